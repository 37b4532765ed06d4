-- asset: tracks
-- severity: WARN
-- scope: partition
-- Identity churn: a clip whose objects are split into many tracks (at least 6 tracks and more than 3 per object
-- on screen at the busiest frame), or where most tracks are shorter than 3 boxes.
-- For speed (bench/checks_scale.py), the busiest frame (boxes per frame: what costs) is counted only in the clips
-- that can be flagged: those with at least 6 tracks, or with most tracks short (a lake of busy clips gains less).
WITH per_track AS (
    SELECT video_id, clip_id, track_id, count(*) AS boxes FROM tracks GROUP BY ALL
), per_clip AS MATERIALIZED (
    SELECT video_id, clip_id, count(*) AS n_tracks, count(*) FILTER (WHERE boxes < 3) AS short_tracks
    FROM per_track GROUP BY video_id, clip_id
), candidates AS (
    SELECT * FROM per_clip
    WHERE n_tracks >= 6 OR (short_tracks >= 3 AND short_tracks > 0.5 * n_tracks)
), busiest AS (
    SELECT video_id, clip_id, max(n) AS max_on_screen
    FROM (SELECT video_id, clip_id, frame_idx, count(*) AS n FROM tracks
          WHERE (video_id, clip_id) IN (SELECT (video_id, clip_id) FROM candidates) GROUP BY ALL)
    GROUP BY ALL
)
SELECT video_id, clip_id, n_tracks, b.max_on_screen, short_tracks,
       round(n_tracks / b.max_on_screen, 2) AS tracks_per_object
FROM candidates JOIN busiest b USING (video_id, clip_id)
WHERE (n_tracks >= 6 AND n_tracks > 3 * b.max_on_screen)
   OR (short_tracks >= 3 AND short_tracks > 0.5 * n_tracks)
ORDER BY video_id, clip_id
