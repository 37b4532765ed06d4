-- Seconds per stage (wall time of the step that materialized each video partition, shared by the videos of a
-- batch), over the latest materialization of every (asset, video). `videos`, `raw_clips` and `detections` are made by
-- one step (`ingest`: one decode pass): each shows that step's seconds.
SELECT asset, count(*) AS videos, round(sum(seconds), 2) AS total_s, round(avg(seconds), 3) AS mean_s,
       round(quantile_cont(seconds, 0.95), 3) AS p95_s, round(max(seconds), 3) AS max_s, sum(rows) AS rows
FROM stage_runs
GROUP BY asset
ORDER BY min(finished_at)
