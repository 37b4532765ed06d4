-- One row per box on a sampled frame; one Parquet file per video partition.
CREATE OR REPLACE VIEW detections AS
SELECT * FROM read_parquet({files}, union_by_name = true);
