-- One row per clip; one Parquet file per video partition in the lake.
CREATE OR REPLACE VIEW raw_clips AS
SELECT * FROM read_parquet({files}, union_by_name = true);
