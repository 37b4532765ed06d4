-- One row per source video; one Parquet file per video partition in the lake.
CREATE OR REPLACE VIEW videos AS
SELECT * FROM {parquet};
