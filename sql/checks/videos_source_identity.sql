-- asset: videos
-- severity: ERROR
-- scope: partition
-- A labelled video whose content is not the one its id stands for: the sha256 of the file it was labelled from
-- differs from the sha256 it was registered with, or the id's 8 hex digits are not that sha256's.
SELECT video_id, uri, sha256, source_sha256, status
FROM videos
WHERE status = 'ok'
  AND (sha256 IS NULL OR source_sha256 IS DISTINCT FROM sha256 OR NOT ends_with(video_id, '-' || left(sha256, 8)))
ORDER BY video_id
