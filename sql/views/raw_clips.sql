-- One row per clip; one Parquet file per video partition in the lake.
CREATE OR REPLACE VIEW raw_clips AS
SELECT * FROM {parquet};
