-- One row per box on a sampled frame; one Parquet file per video partition.
CREATE OR REPLACE VIEW detections AS
SELECT * FROM {parquet};
