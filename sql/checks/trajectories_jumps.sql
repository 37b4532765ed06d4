-- asset: trajectories
-- severity: WARN
-- scope: partition
-- A kept trajectory whose centre jumps more than 0.2 of the frame between consecutive points less than 0.3 s
-- apart (an identity switch or a bad box, which would make its motion facts wrong).
WITH points AS (
    SELECT video_id, clip_id, track_id, p.t AS t, p.ncx AS x, p.ncy AS y,
           lag(p.t) OVER w AS t0, lag(p.ncx) OVER w AS x0, lag(p.ncy) OVER w AS y0
    FROM (SELECT video_id, clip_id, track_id, unnest(path) AS p FROM trajectories WHERE kept)
    WINDOW w AS (PARTITION BY video_id, clip_id, track_id ORDER BY p.t)
)
SELECT video_id, clip_id, track_id, t0, t, round(sqrt((x - x0) ^ 2 + (y - y0) ^ 2), 3) AS jump
FROM points
WHERE t0 IS NOT NULL AND t - t0 < 0.3 AND sqrt((x - x0) ^ 2 + (y - y0) ^ 2) > 0.2
ORDER BY video_id, clip_id, track_id, t
