-- asset: qa_pairs
-- severity: ERROR
-- scope: partition
-- Every kept multiple-choice question has exactly 4 distinct non-empty options, an answer in A-D whose option
-- is the answer text, and one of the five categories; every kept grounded question has a GroundMoRe type.
-- "4 distinct non-empty options": the four options, trimmed and lower-cased, are all non-blank and the 6 pairs
-- differ. A question is blank when trim() leaves nothing; trim (slow: it reads Unicode) looks only at questions
-- that could be: starting with a space or holding a non-ASCII character (it strips Unicode spaces). The
-- answer's option is picked by a CASE rather than from a list built per row.
WITH q AS (
    SELECT *, lower(trim(option_a)) AS a, lower(trim(option_b)) AS b, lower(trim(option_c)) AS c,
           lower(trim(option_d)) AS d
    FROM qa_pairs WHERE kept
), f AS (
    SELECT *, coalesce(a <> '' AND b <> '' AND c <> '' AND d <> '' AND a <> b AND a <> c AND a <> d AND b <> c
                       AND b <> d AND c <> d, false) AS four_options
    FROM q
)
SELECT video_id, clip_id, qa_id, category, q_type, answer, question,
       CASE WHEN question IS NULL OR trim(question) = '' THEN 'empty question'
            WHEN grounded IS NULL THEN 'grounded is null'
            WHEN grounded THEN 'grounded question without a valid q_type'
            WHEN answer IS NULL OR answer NOT IN ('A', 'B', 'C', 'D') THEN 'answer not in A-D'
            WHEN category IS NULL OR category NOT IN ('motion_recognition', 'location_motion', 'temporal_order',
                                                      'motion_objects', 'repetition_count') THEN 'unknown category'
            WHEN NOT four_options THEN 'options are not 4 distinct non-empty'
            ELSE 'answer letter does not point at the answer text' END AS problem
FROM f
WHERE question IS NULL OR question = ''
    OR CASE WHEN starts_with(question, ' ') OR strlen(question) <> length(question) THEN trim(question) = '' ELSE false END
    OR grounded IS NULL
    OR (grounded AND (q_type IS NULL OR q_type NOT IN ('causal', 'sequential', 'counterfactual', 'descriptive')))
    OR (NOT grounded AND (
        answer IS NULL OR answer NOT IN ('A', 'B', 'C', 'D')
        OR category IS NULL OR category NOT IN ('motion_recognition', 'location_motion', 'temporal_order',
                                                'motion_objects', 'repetition_count')
        OR NOT four_options
        OR answer_text IS DISTINCT FROM CASE answer WHEN 'A' THEN option_a WHEN 'B' THEN option_b WHEN 'C' THEN option_c
                                                    WHEN 'D' THEN option_d END))
ORDER BY video_id, clip_id, qa_id
