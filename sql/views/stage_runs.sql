-- One row per materialized (asset, video partition): when it ran, how long the step took, rows written.
CREATE OR REPLACE VIEW stage_runs AS
SELECT * FROM {parquet};
