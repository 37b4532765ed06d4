-- asset: tracks
-- severity: WARN
-- scope: partition
-- Identity churn: a clip whose objects are split into many tracks (at least 6 tracks and more than 3 per object
-- on screen at the busiest frame), or where most tracks are shorter than 3 boxes.
WITH per_track AS (
    SELECT video_id, clip_id, track_id, count(*) AS boxes FROM tracks GROUP BY ALL
), busiest AS (
    SELECT video_id, clip_id, max(n) AS max_on_screen
    FROM (SELECT video_id, clip_id, frame_idx, count(*) AS n FROM tracks GROUP BY ALL) GROUP BY ALL
)
SELECT video_id, clip_id, count(*) AS n_tracks, any_value(b.max_on_screen) AS max_on_screen,
       count(*) FILTER (WHERE boxes < 3) AS short_tracks,
       round(count(*) / any_value(b.max_on_screen), 2) AS tracks_per_object
FROM per_track JOIN busiest b USING (video_id, clip_id)
GROUP BY video_id, clip_id
HAVING (count(*) >= 6 AND count(*) > 3 * any_value(b.max_on_screen))
    OR (count(*) FILTER (WHERE boxes < 3) >= 3 AND count(*) FILTER (WHERE boxes < 3) > 0.5 * count(*))
ORDER BY video_id, clip_id
