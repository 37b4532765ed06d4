-- Why material was dropped, stage by stage: videos skipped or in error, clips dropped (camera motion, too
-- short, ...), tracks dropped (too short, static), LLM questions rejected against the motion facts.
SELECT 'video' AS stage, status AS reason, count(*) AS n FROM videos WHERE status <> 'ok' GROUP BY ALL
UNION ALL
SELECT 'clip', drop_reason, count(*) FROM raw_clips WHERE NOT kept GROUP BY ALL
UNION ALL
SELECT 'track', drop_reason, count(*) FROM trajectories WHERE NOT kept GROUP BY ALL
UNION ALL
SELECT 'question', split_part(reject_reason, ':', 1), count(*) FROM qa_pairs WHERE NOT kept GROUP BY ALL
ORDER BY stage, n DESC
