-- Per object class: tracks, moving (kept) trajectories, their typical motion, and the grounded questions
-- whose answer is an object of that class.
WITH t AS (SELECT * FROM trajectories),
g AS (
    SELECT t.label, count(*) AS grounded_answers
    FROM qa_pairs q JOIN t ON t.video_id = q.video_id AND t.clip_id = q.clip_id AND t.track_id = q.target_track_id
    WHERE q.kept AND q.grounded GROUP BY 1
)
SELECT t.label,
       count(*) AS tracks,
       count(*) FILTER (WHERE kept) AS moving,
       count(DISTINCT video_id) AS videos,
       round(median(mean_speed) FILTER (WHERE kept), 3) AS median_speed_diag_per_s,
       mode(direction) FILTER (WHERE kept) AS commonest_direction,
       coalesce(any_value(g.grounded_answers), 0) AS grounded_answers
FROM t LEFT JOIN g USING (label)
GROUP BY t.label
ORDER BY tracks DESC
