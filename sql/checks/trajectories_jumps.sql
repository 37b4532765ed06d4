-- asset: trajectories
-- severity: WARN
-- scope: partition
-- A kept trajectory whose centre jumps more than 0.2 of the frame between consecutive points less than 0.3 s
-- apart (an identity switch or a bad box, which would make its motion facts wrong).
-- Consecutive points are compared inside each `path` list (sorted by t) with list functions (faster than
-- unnesting every point into a window: bench/checks_scale.py).
WITH paths AS (
    SELECT video_id, clip_id, track_id, list_sort(path) AS p FROM trajectories WHERE kept AND len(path) > 1
), jumps AS (
    SELECT video_id, clip_id, track_id,
           list_filter(list_transform(range(1, len(p)), lambda i: {t0: p[i].t, t: p[i + 1].t,
                                                              d: sqrt((p[i + 1].ncx - p[i].ncx) ^ 2 + (p[i + 1].ncy - p[i].ncy) ^ 2)}),
                       lambda j: j.t - j.t0 < 0.3 AND j.d > 0.2) AS js
    FROM paths
)
SELECT video_id, clip_id, track_id, j.t0 AS t0, j.t AS t, round(j.d, 3) AS jump
FROM (SELECT video_id, clip_id, track_id, unnest(js) AS j FROM jumps WHERE len(js) > 0)
ORDER BY video_id, clip_id, track_id, t
