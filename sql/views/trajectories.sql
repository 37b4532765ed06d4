-- One row per track: smoothed normalised path and motion facts (kept = false: too_short / static).
CREATE OR REPLACE VIEW trajectories AS
SELECT * FROM {parquet};
