-- asset: qa_pairs
-- severity: WARN
-- scope: partition
-- severity_setting: FM_TEXT_CHECK_SEVERITY
-- Questions and options holding instruction-like text (prompt injection), markup or a URL
-- (fm_assets/labels/hygiene.py: the same pattern); flagged questions are left out of exports.
SELECT video_id, clip_id, qa_id, source, left(question, 200) AS question
FROM qa_pairs
WHERE regexp_matches(concat_ws(' ', question, option_a, option_b, option_c, option_d, answer_text), '(?i)(\b(ignore|disregard|forget|override)\b[^.]{0,40}\b(instructions?|prompts?|rules)\b|\bsystem prompt\b|\byou are now\b|\bnew instructions?\b|</?[a-z][a-z0-9-]*(\s[^>]*)?/?>|\[[^\]]*\]\([^)]*\)|\bhttps?://|\bwww\.[a-z0-9-]+\.[a-z]|\bjavascript:)')
ORDER BY video_id, clip_id, qa_id
