-- asset: detections
-- severity: ERROR
-- scope: partition
-- Every box lies inside its clip's frame (1 px tolerance), has positive width and height and finite coordinates.
SELECT d.video_id, d.clip_id, d.frame_idx, d.det_idx, d.x1, d.y1, d.x2, d.y2, c.width, c.height,
       CASE WHEN c.clip_id IS NULL THEN 'box of a clip not in raw_clips'
            WHEN isnan(d.x1) OR isnan(d.y1) OR isnan(d.x2) OR isnan(d.y2) THEN 'NaN coordinate'
            WHEN d.x2 <= d.x1 OR d.y2 <= d.y1 THEN 'zero or negative area'
            ELSE 'outside the frame' END AS problem
FROM detections d
LEFT JOIN raw_clips c USING (video_id, clip_id)
WHERE c.clip_id IS NULL
   OR d.x1 IS NULL OR d.y1 IS NULL OR d.x2 IS NULL OR d.y2 IS NULL
   OR isnan(d.x1) OR isnan(d.y1) OR isnan(d.x2) OR isnan(d.y2)
   OR d.x2 <= d.x1 OR d.y2 <= d.y1
   OR d.x1 < -1 OR d.y1 < -1 OR d.x2 > c.width + 1 OR d.y2 > c.height + 1
ORDER BY d.video_id, d.clip_id, d.frame_idx, d.det_idx
