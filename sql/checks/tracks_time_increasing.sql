-- asset: tracks
-- severity: ERROR
-- scope: partition
-- Along each track, frames and presentation times strictly increase (no frame twice, no time going back).
-- Each track's boxes are gathered once into a list ordered by (frame_idx, t_s) and each is compared with its
-- predecessor in the list (faster than a window over all rows: bench/checks_scale.py).
WITH per_track AS (
    SELECT video_id, clip_id, track_id, list({f: frame_idx, t: t_s} ORDER BY frame_idx, t_s) AS b
    FROM tracks GROUP BY ALL
), bad AS (
    SELECT video_id, clip_id, track_id,
           list_filter(list_transform(range(1, len(b) + 1),
                                      lambda i: {prev_frame: CASE WHEN i > 1 THEN b[i - 1].f END, frame_idx: b[i].f,
                                                 prev_t: CASE WHEN i > 1 THEN b[i - 1].t END, t_s: b[i].t}),
                       lambda r: r.t_s IS NULL OR isnan(r.t_s)
                                 OR (r.prev_frame IS NOT NULL AND (r.frame_idx <= r.prev_frame OR r.t_s <= r.prev_t))) AS rs
    FROM per_track
)
SELECT video_id, clip_id, track_id, r.prev_frame AS prev_frame, r.frame_idx AS frame_idx, r.prev_t AS prev_t, r.t_s AS t_s
FROM (SELECT video_id, clip_id, track_id, unnest(rs) AS r FROM bad WHERE len(rs) > 0)
ORDER BY video_id, clip_id, track_id, frame_idx
