-- asset: trajectories
-- severity: WARN
-- scope: partition
-- A kept trajectory whose centre jumps more than 0.2 of the frame between consecutive points less than 0.3 s
-- apart (an identity switch or a bad box, which would make its motion facts wrong).
-- For speed (bench/checks_scale.py), consecutive points of each `path` sorted by t (list_sort) are compared as
-- rows: the list without its last point unnested next to the list without its first one. A path whose times
-- already strictly increase is sorted as stored, so only the others are sorted (list_sort was most of the cost);
-- a step under 0.14 (< 0.2 / sqrt(2)) in both x and y is no jump, which spares the square root of most steps.
WITH stored AS (
    SELECT video_id, clip_id, track_id, unnest(list_slice(path, 1, len(path) - 1)) AS a,
           unnest(list_slice(path, 2, len(path))) AS b
    FROM trajectories WHERE kept AND len(path) > 1
), odd AS MATERIALIZED (  -- the jumps, and the pairs whose times do not increase
    SELECT *, coalesce(a.t < b.t, false) AS increasing
    FROM stored
    WHERE NOT coalesce(a.t < b.t, false)
       OR (b.t - a.t < 0.3 AND (abs(b.ncx - a.ncx) > 0.14 OR abs(b.ncy - a.ncy) > 0.14)
           AND sqrt((b.ncx - a.ncx) ^ 2 + (b.ncy - a.ncy) ^ 2) > 0.2)
), unsorted AS (
    SELECT DISTINCT video_id, clip_id, track_id FROM odd WHERE NOT increasing
), resorted AS (
    SELECT video_id, clip_id, track_id, unnest(list_slice(p, 1, len(p) - 1)) AS a, unnest(list_slice(p, 2, len(p))) AS b
    FROM (SELECT video_id, clip_id, track_id, list_sort(path) AS p
          FROM trajectories t WHERE kept AND len(path) > 1
           AND EXISTS (SELECT 1 FROM unsorted u WHERE u.video_id IS NOT DISTINCT FROM t.video_id
                       AND u.clip_id IS NOT DISTINCT FROM t.clip_id AND u.track_id IS NOT DISTINCT FROM t.track_id))
), pairs AS (
    SELECT video_id, clip_id, track_id, a, b FROM odd o
    WHERE NOT EXISTS (SELECT 1 FROM unsorted u WHERE u.video_id IS NOT DISTINCT FROM o.video_id
                      AND u.clip_id IS NOT DISTINCT FROM o.clip_id AND u.track_id IS NOT DISTINCT FROM o.track_id)
    UNION ALL
    SELECT * FROM resorted
)
SELECT video_id, clip_id, track_id, a.t AS t0, b.t AS t, round(sqrt((b.ncx - a.ncx) ^ 2 + (b.ncy - a.ncy) ^ 2), 3) AS jump
FROM pairs
WHERE b.t - a.t < 0.3 AND sqrt((b.ncx - a.ncx) ^ 2 + (b.ncy - a.ncy) ^ 2) > 0.2
ORDER BY video_id, clip_id, track_id, t
