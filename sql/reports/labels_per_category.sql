-- Kept questions per FoundationMotion category (multiple choice) and GroundMoRe type (grounded), per split,
-- with their share and the reference mix FoundationMotion reports.
WITH q AS (
    SELECT q.*, coalesce(s.split, 'unassigned') AS split,
           CASE WHEN grounded THEN 'grounded/' || q_type ELSE category END AS kind
    FROM qa_pairs q LEFT JOIN splits s USING (video_id)
    WHERE kept
), reference(kind, reference_share) AS (
    VALUES ('motion_recognition', 0.349), ('location_motion', 0.250), ('temporal_order', 0.182),
           ('motion_objects', 0.116), ('repetition_count', 0.103)
)
SELECT kind,
       count(*) AS questions,
       count(*) FILTER (WHERE split = 'train') AS train,
       count(*) FILTER (WHERE split = 'val') AS val,
       count(*) FILTER (WHERE split = 'test') AS test,
       count(*) FILTER (WHERE source = 'llm') AS by_llm,
       round(count(*) / sum(count(*)) OVER (PARTITION BY kind LIKE 'grounded/%'), 3) AS share,
       any_value(r.reference_share) AS reference_share
FROM q LEFT JOIN reference r USING (kind)
GROUP BY kind
ORDER BY kind LIKE 'grounded/%', questions DESC
