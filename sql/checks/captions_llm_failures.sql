-- asset: captions
-- severity: WARN
-- scope: partition
-- Clips whose caption the LLM could not write (after retries); their questions are rule-based only.
SELECT video_id, clip_id, writer, attempts, error
FROM captions
WHERE status <> 'ok'
ORDER BY video_id, clip_id
