-- One row per source video; one Parquet file per video partition in the lake.
CREATE OR REPLACE VIEW videos AS
SELECT * FROM read_parquet('{lake}/videos/*.parquet', union_by_name = true);
