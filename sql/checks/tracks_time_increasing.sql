-- asset: tracks
-- severity: ERROR
-- scope: partition
-- Along each track, frames and presentation times strictly increase (no frame twice, no time going back).
-- Two passes, for speed (sorting every box of the lake by track is what costs): the first collects each
-- track's (frame, time) points as read, under a 64-bit hash of (video_id, clip_id, track_id), and keeps the
-- hashes whose points are not already in strictly increasing order, or have a missing or NaN value (tracks whose
-- hashes collide are collected together: a track breaking the rule still makes the collection out of order);
-- the second one applies the rule, box after box in (frame, time) order, to those tracks only.
WITH per_track AS (
    SELECT hash(video_id, clip_id, track_id) AS h, list({'f': frame_idx, 't': t_s}) AS p,
           bool_or(frame_idx IS NULL OR t_s IS NULL OR isnan(t_s)) AS odd
    FROM tracks GROUP BY h
), suspect AS (
    SELECT h FROM per_track WHERE odd
    UNION
    SELECT h FROM (SELECT h, unnest(list_slice(p, 1, len(p) - 1)) AS a, unnest(list_slice(p, 2, len(p))) AS b
                   FROM per_track WHERE len(p) > 1)
    WHERE NOT coalesce(a.f < b.f AND a.t < b.t, false)
)
SELECT video_id, clip_id, track_id, prev_frame, frame_idx, prev_t, t_s
FROM (
    SELECT video_id, clip_id, track_id, frame_idx, t_s,
           lag(frame_idx) OVER w AS prev_frame, lag(t_s) OVER w AS prev_t
    FROM tracks
    WHERE hash(video_id, clip_id, track_id) IN (SELECT h FROM suspect)
    WINDOW w AS (PARTITION BY video_id, clip_id, track_id ORDER BY frame_idx, t_s)
)
WHERE t_s IS NULL OR isnan(t_s)
   OR (prev_frame IS NOT NULL AND (frame_idx <= prev_frame OR t_s <= prev_t))
ORDER BY video_id, clip_id, track_id, frame_idx
