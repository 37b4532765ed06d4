-- One row per box of a track on a frame; one Parquet file per video partition.
CREATE OR REPLACE VIEW tracks AS
SELECT * FROM {parquet};
