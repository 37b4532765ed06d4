-- asset: qa_pairs
-- severity: ERROR
-- scope: partition
-- No question is asked twice about the same clip (same text, case and spacing ignored) among kept questions.
SELECT video_id, clip_id, grounded, lower(trim(question)) AS question, count(*) AS copies, list(qa_id) AS qa_ids
FROM qa_pairs
WHERE kept
GROUP BY video_id, clip_id, grounded, lower(trim(question))
HAVING count(*) > 1
ORDER BY video_id, clip_id
