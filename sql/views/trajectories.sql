-- One row per track: smoothed normalised path and motion facts (kept = false: too_short / static).
CREATE OR REPLACE VIEW trajectories AS
SELECT * FROM read_parquet({files}, union_by_name = true);
