-- asset: detections
-- severity: ERROR
-- scope: partition
-- Detection scores (and person scores, where given) are numbers in [0, 1].
SELECT video_id, clip_id, frame_idx, det_idx, label, score, person_score
FROM detections
WHERE score IS NULL OR isnan(score) OR score < 0 OR score > 1
   OR (person_score IS NOT NULL AND (isnan(person_score) OR person_score < 0 OR person_score > 1))
ORDER BY video_id, clip_id, frame_idx, det_idx
