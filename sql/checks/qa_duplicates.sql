-- asset: qa_pairs
-- severity: ERROR
-- scope: partition
-- No question is asked twice about the same clip (same text, case and spacing ignored) among kept questions.
-- For speed (bench/checks_scale.py): the questions are first counted under a 64-bit hash of their key (equal keys
-- have equal hashes), and only those whose hash occurs twice are grouped by the key itself; trim() (slow: it reads
-- Unicode, and strips Unicode spaces) is skipped where it changes nothing: on ASCII text neither starting nor
-- ending with a space.
WITH q AS (
    SELECT video_id, clip_id, grounded, qa_id,
           lower(CASE WHEN strlen(question) = length(question) AND NOT starts_with(question, ' ')
                           AND NOT ends_with(question, ' ') THEN question ELSE trim(question) END) AS question
    FROM qa_pairs WHERE kept
), twice AS (
    SELECT hash(video_id, clip_id, grounded, question) AS h FROM q GROUP BY h HAVING count(*) > 1
)
SELECT video_id, clip_id, grounded, question, count(*) AS copies, list(qa_id) AS qa_ids
FROM q
WHERE hash(video_id, clip_id, grounded, question) IN (SELECT h FROM twice)
GROUP BY video_id, clip_id, grounded, question
HAVING count(*) > 1
ORDER BY video_id, clip_id
