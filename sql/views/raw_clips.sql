-- One row per clip; one Parquet file per video partition in the lake.
CREATE OR REPLACE VIEW raw_clips AS
SELECT * FROM read_parquet('{lake}/raw_clips/*.parquet', union_by_name = true);
