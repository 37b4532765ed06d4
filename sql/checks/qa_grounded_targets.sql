-- asset: qa_pairs
-- severity: ERROR
-- scope: partition
-- Every kept grounded question points at a kept trajectory of its clip that has boxes inside the question's
-- window, and the window [action_start_s, action_end_s] is non-empty and inside its clip (0.05 s tolerance).
-- For speed (bench/checks_scale.py), "has boxes inside the window" is one join of the numbered questions (rn)
-- with the tracks rather than a correlated NOT EXISTS per question.
WITH g AS MATERIALIZED (
    SELECT video_id, clip_id, qa_id, target_track_id, action_start_s, action_end_s, row_number() OVER () AS rn
    FROM qa_pairs WHERE kept AND grounded
), inside AS (  -- the questions whose target has a box inside the window
    SELECT DISTINCT g.rn
    FROM g JOIN tracks b
      ON b.video_id = g.video_id AND b.clip_id = g.clip_id AND b.track_id = g.target_track_id
     AND b.t_s BETWEEN g.action_start_s - 0.05 AND g.action_end_s + 0.05
)
SELECT g.video_id, g.clip_id, g.qa_id, g.target_track_id, g.action_start_s, g.action_end_s,
       c.start_s AS clip_start_s, c.end_s AS clip_end_s,
       CASE WHEN c.clip_id IS NULL THEN 'clip not in raw_clips'
            WHEN g.target_track_id IS NULL OR t.track_id IS NULL THEN 'target is not a kept trajectory of the clip'
            WHEN g.action_start_s IS NULL OR g.action_end_s IS NULL OR g.action_end_s <= g.action_start_s THEN 'empty window'
            WHEN g.action_start_s < c.start_s - 0.05 OR g.action_end_s > c.end_s + 0.05 THEN 'window outside the clip'
            ELSE 'target has no box inside the window' END AS problem
FROM g
LEFT JOIN raw_clips c USING (video_id, clip_id)
LEFT JOIN (SELECT video_id, clip_id, track_id FROM trajectories WHERE kept) t
       ON t.video_id = g.video_id AND t.clip_id = g.clip_id AND t.track_id = g.target_track_id
LEFT JOIN inside i ON i.rn = g.rn
WHERE c.clip_id IS NULL OR t.track_id IS NULL
   OR g.action_start_s IS NULL OR g.action_end_s IS NULL OR g.action_end_s <= g.action_start_s
   OR g.action_start_s < c.start_s - 0.05 OR g.action_end_s > c.end_s + 0.05
   OR i.rn IS NULL
ORDER BY g.video_id, g.clip_id, g.qa_id
