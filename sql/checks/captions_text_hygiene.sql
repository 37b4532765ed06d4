-- asset: captions
-- severity: WARN
-- scope: partition
-- severity_setting: FM_TEXT_CHECK_SEVERITY
-- Captions holding instruction-like text (prompt injection), markup or a URL (fm_assets/labels/hygiene.py:
-- the same pattern); flagged captions are left out of exports. FM_TEXT_CHECK_SEVERITY=ERROR makes it blocking.
SELECT video_id, clip_id, writer, left(caption, 200) AS caption
FROM captions
WHERE regexp_matches(concat_ws(' ', caption, aspects), '(?i)(\b(ignore|disregard|forget|override)\b[^.]{0,40}\b(instructions?|prompts?|rules)\b|\bsystem prompt\b|\byou are now\b|\bnew instructions?\b|</?[a-z][a-z0-9-]*(\s[^>]*)?/?>|\[[^\]]*\]\([^)]*\)|\bhttps?://|\bwww\.[a-z0-9-]+\.[a-z]|\bjavascript:)')
ORDER BY video_id, clip_id
