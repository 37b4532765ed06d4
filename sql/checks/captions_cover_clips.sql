-- asset: captions
-- severity: ERROR
-- scope: partition
-- Every kept clip has a caption row; a written caption is not empty and names at least one of the moving
-- objects of its clip (its label, a plural, or a common synonym).
-- A label is named when a word of the caption (a run of [a-z0-9_], what `\b...\b` delimits) is one of the
-- label's words: the synonym lists below; an unknown one-word label matches itself or its plural. Labels of
-- several words (e.g. 'traffic light') are matched as a phrase.
-- For speed (bench/checks_scale.py): the synonyms named by a caption are found in one regular-expression scan
-- of it (`known`: its pattern lists exactly the words of the synonym lists, a unit test holds them equal), the
-- other labels word by word in their clip's caption; trim() (slow: it reads Unicode) looks only at captions that
-- could be blank: those starting with a space or holding a non-ASCII character (trim strips Unicode spaces).
WITH synonyms(label, words) AS (
    VALUES ('person', ['person', 'people', 'persons', 'man', 'men', 'woman', 'women', 'pedestrian', 'pedestrians',
                       'someone', 'boy', 'boys', 'girl', 'girls', 'child', 'children', 'player', 'players', 'rider',
                       'riders', 'hand', 'hands']),
           ('car', ['car', 'cars', 'vehicle', 'vehicles', 'truck', 'trucks', 'van', 'vans', 'taxi', 'taxis', 'suv', 'suvs']),
           ('bicycle', ['bicycle', 'bicycles', 'bike', 'bikes', 'cyclist', 'cyclists']),
           ('object', ['object', 'objects', 'item', 'items', 'thing', 'things', 'shape', 'shapes', 'box', 'boxes',
                       'ball', 'balls', 'blob', 'blobs'])
), synonym_words AS (  -- the one-word labels with a synonym list, a row per word
    SELECT label, unnest(words) AS word FROM synonyms WHERE regexp_full_match(label, '[a-z0-9_]+')
), labels AS (
    SELECT DISTINCT video_id, clip_id, lower(label) AS label FROM trajectories WHERE kept
), objects AS (
    SELECT video_id, clip_id, list(label ORDER BY label) AS labels FROM labels GROUP BY ALL
), texts AS (
    SELECT video_id, clip_id, lower(caption) AS text FROM captions WHERE status = 'ok'
), known AS MATERIALIZED (  -- (clip, label) for every word of a caption that is in a synonym list
    SELECT DISTINCT w.video_id, w.clip_id, s.label
    FROM (SELECT video_id, clip_id, unnest(regexp_extract_all(text,
              '\b(?:person|people|persons|man|men|woman|women|pedestrian|pedestrians|someone|boy|boys|girl|girls|child|children|player|players|rider|riders|hand|hands|car|cars|vehicle|vehicles|truck|trucks|van|vans|taxi|taxis|suv|suvs|bicycle|bicycles|bike|bikes|cyclist|cyclists|object|objects|item|items|thing|things|shape|shapes|box|boxes|ball|balls|blob|blobs)\b')) AS word
          FROM texts) w
    JOIN synonym_words s USING (word)
), others AS MATERIALIZED (  -- the labels matched without a synonym list
    SELECT * FROM labels l WHERE NOT EXISTS (SELECT 1 FROM synonym_words s WHERE s.label = l.label)
), named AS (
    SELECT DISTINCT video_id, clip_id FROM labels JOIN known USING (video_id, clip_id, label)
    UNION
    SELECT l.video_id, l.clip_id
    FROM others l JOIN texts w USING (video_id, clip_id)
    WHERE CASE WHEN regexp_full_match(l.label, '[a-z0-9_]+')
               THEN contains(w.text, l.label)
                    AND list_has_any(regexp_split_to_array(w.text, '[^a-z0-9_]+'), [l.label, l.label || 's'])
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
   OR (c.status = 'ok' AND (c.caption IS NULL OR c.caption = ''
                            OR CASE WHEN starts_with(c.caption, ' ') OR strlen(c.caption) <> length(c.caption)
                                    THEN trim(c.caption) = '' ELSE false END))
   OR (c.status = 'ok' AND o.labels IS NOT NULL AND n.clip_id IS NULL)
ORDER BY k.video_id, k.clip_id
