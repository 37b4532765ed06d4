-- asset: tracks
-- severity: ERROR
-- scope: partition
-- Along each track, frames and presentation times strictly increase (no frame twice, no time going back).
SELECT video_id, clip_id, track_id, prev_frame, frame_idx, prev_t, t_s
FROM (
    SELECT video_id, clip_id, track_id, frame_idx, t_s,
           lag(frame_idx) OVER w AS prev_frame, lag(t_s) OVER w AS prev_t
    FROM tracks
    WINDOW w AS (PARTITION BY video_id, clip_id, track_id ORDER BY frame_idx, t_s)
)
WHERE t_s IS NULL OR isnan(t_s)
   OR (prev_frame IS NOT NULL AND (frame_idx <= prev_frame OR t_s <= prev_t))
ORDER BY video_id, clip_id, track_id, frame_idx
