-- asset: splits
-- severity: ERROR
-- scope: dataset
-- No leakage between train, val and test: each video is in exactly one valid split, copies of the same file
-- (same content hash) share a split, and every labelled video has a split (but retired ones: stale or
-- source_missing videos are left out of the dataset).
WITH s AS (SELECT * FROM splits)
SELECT video_id, NULL AS group_key, string_agg(DISTINCT split, ',') AS splits, 'video in several splits or an invalid split' AS problem
FROM s GROUP BY video_id
HAVING count(DISTINCT split) > 1 OR bool_or(split NOT IN ('train', 'val', 'test')) OR count(*) > 1
UNION ALL
SELECT NULL, group_key, string_agg(DISTINCT split, ','), 'copies of one file in different splits'
FROM s GROUP BY group_key HAVING count(DISTINCT split) > 1
UNION ALL
SELECT v.video_id, NULL, NULL, 'labelled video without a split'
FROM videos v WHERE NOT EXISTS (SELECT 1 FROM s WHERE s.video_id = v.video_id)
  AND coalesce(v.status, '') NOT IN ('stale', 'source_missing')
