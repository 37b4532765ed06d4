-- asset: qa_pairs
-- severity: ERROR
-- scope: partition
-- Every kept multiple-choice question has exactly 4 distinct non-empty options, an answer in A-D whose option
-- is the answer text, and one of the five categories; every kept grounded question has a GroundMoRe type.
-- "4 distinct non-empty options": the four options, trimmed and lower-cased, are all non-blank and the 6 pairs
-- differ.
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
WHERE question IS NULL OR trim(question) = '' OR grounded IS NULL
    OR (grounded AND (q_type IS NULL OR q_type NOT IN ('causal', 'sequential', 'counterfactual', 'descriptive')))
    OR (NOT grounded AND (
        answer IS NULL OR answer NOT IN ('A', 'B', 'C', 'D')
        OR category IS NULL OR category NOT IN ('motion_recognition', 'location_motion', 'temporal_order',
                                                'motion_objects', 'repetition_count')
        OR NOT four_options
        OR answer_text IS DISTINCT FROM [option_a, option_b, option_c, option_d][list_position(['A', 'B', 'C', 'D'], answer)]))
ORDER BY video_id, clip_id, qa_id
