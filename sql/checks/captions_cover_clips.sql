-- asset: captions
-- severity: ERROR
-- scope: partition
-- Every kept clip has a caption row; a written caption is not empty and names at least one of the moving
-- objects of its clip (its label, a plural, or a common synonym).
-- the same rule without a regular expression built per (caption, label) row.
-- Each caption is split once into its words (what `\b...\b` delimits: runs of [a-z0-9_]) and a label is named
-- when a word of the caption is one of the label's words (the synonym lists below; an unknown one-word label
-- matches itself or its plural). Labels of several words (e.g. 'traffic light') are matched as a phrase.
WITH synonyms(label, words) AS (
    VALUES ('person', ['person', 'people', 'persons', 'man', 'men', 'woman', 'women', 'pedestrian', 'pedestrians',
                       'someone', 'boy', 'boys', 'girl', 'girls', 'child', 'children', 'player', 'players', 'rider',
                       'riders', 'hand', 'hands']),
           ('car', ['car', 'cars', 'vehicle', 'vehicles', 'truck', 'trucks', 'van', 'vans', 'taxi', 'taxis', 'suv', 'suvs']),
           ('bicycle', ['bicycle', 'bicycles', 'bike', 'bikes', 'cyclist', 'cyclists']),
           ('object', ['object', 'objects', 'item', 'items', 'thing', 'things', 'shape', 'shapes', 'box', 'boxes',
                       'ball', 'balls', 'blob', 'blobs'])
), labels AS (
    SELECT DISTINCT video_id, clip_id, lower(label) AS label FROM trajectories WHERE kept
), objects AS (
    SELECT video_id, clip_id, list(label ORDER BY label) AS labels FROM labels GROUP BY ALL
), caption_words AS (
    SELECT video_id, clip_id, lower(caption) AS text, regexp_split_to_array(lower(caption), '[^a-z0-9_]+') AS words
    FROM captions WHERE status = 'ok'
), named AS (
    SELECT DISTINCT l.video_id, l.clip_id
    FROM labels l
    JOIN caption_words w USING (video_id, clip_id)
    LEFT JOIN synonyms s USING (label)
    WHERE CASE WHEN regexp_full_match(l.label, '[a-z0-9_]+')
               THEN list_has_any(w.words, coalesce(s.words, [l.label, l.label || 's']))
               ELSE regexp_matches(w.text, '\b(' || l.label || 's?)\b') END
)
SELECT k.video_id, k.clip_id, c.status, o.labels,
       CASE WHEN c.clip_id IS NULL THEN 'kept clip without a caption row'
            WHEN c.caption IS NULL OR trim(c.caption) = '' THEN 'empty caption'
            ELSE 'names none of its objects' END AS problem
FROM (SELECT video_id, clip_id FROM raw_clips WHERE kept) k
LEFT JOIN captions c USING (video_id, clip_id)
LEFT JOIN objects o USING (video_id, clip_id)
LEFT JOIN named n ON n.video_id = k.video_id AND n.clip_id = k.clip_id
WHERE c.clip_id IS NULL
   OR (c.status = 'ok' AND (c.caption IS NULL OR trim(c.caption) = ''))
   OR (c.status = 'ok' AND o.labels IS NOT NULL AND n.clip_id IS NULL)
ORDER BY k.video_id, k.clip_id
