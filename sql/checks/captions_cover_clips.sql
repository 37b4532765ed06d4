-- asset: captions
-- severity: ERROR
-- scope: partition
-- Every kept clip has a caption row; a written caption is not empty and names at least one of the moving
-- objects of its clip (its label, a plural, or a common synonym).
WITH synonyms(label, pattern) AS (
    VALUES ('person', 'person|people|persons|man|men|woman|women|pedestrians?|someone|boys?|girls?|child|children|players?|riders?|hands?'),
           ('car', 'cars?|vehicles?|trucks?|vans?|taxis?|suvs?'),
           ('bicycle', 'bicycles?|bikes?|cyclists?'),
           ('object', 'objects?|items?|things?|shapes?|box(es)?|balls?|blobs?')
), objects AS (
    SELECT video_id, clip_id, list(DISTINCT lower(label) ORDER BY lower(label)) AS labels
    FROM trajectories WHERE kept GROUP BY ALL
)
SELECT k.video_id, k.clip_id, c.status, o.labels,
       CASE WHEN c.clip_id IS NULL THEN 'kept clip without a caption row'
            WHEN c.caption IS NULL OR trim(c.caption) = '' THEN 'empty caption'
            ELSE 'names none of its objects' END AS problem
FROM (SELECT video_id, clip_id FROM raw_clips WHERE kept) k
LEFT JOIN captions c USING (video_id, clip_id)
LEFT JOIN objects o USING (video_id, clip_id)
WHERE c.clip_id IS NULL
   OR (c.status = 'ok' AND (c.caption IS NULL OR trim(c.caption) = ''))
   OR (c.status = 'ok' AND o.labels IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM unnest(o.labels) AS l(label) LEFT JOIN synonyms s USING (label)
        WHERE regexp_matches(lower(c.caption), '\b(' || coalesce(s.pattern, l.label || 's?') || ')\b')))
ORDER BY k.video_id, k.clip_id
