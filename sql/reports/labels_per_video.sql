-- Per video: split, status, and how many labels each stage produced (the place to find videos that yield nothing).
SELECT v.video_id, s.split, v.status, round(v.duration_s, 1) AS duration_s,
       coalesce(c.kept, 0) || '/' || coalesce(c.clips, 0) AS clips_kept,
       coalesce(t.tracks, 0) AS tracks, coalesce(t.moving, 0) AS moving,
       coalesce(q.mcq, 0) AS mcq, coalesce(q.grounded, 0) AS grounded, coalesce(q.rejected, 0) AS rejected,
       v.error
FROM videos v
LEFT JOIN splits s USING (video_id)
LEFT JOIN (SELECT video_id, count(*) AS clips, count(*) FILTER (WHERE kept) AS kept FROM raw_clips GROUP BY 1) c USING (video_id)
LEFT JOIN (SELECT video_id, count(*) AS tracks, count(*) FILTER (WHERE kept) AS moving FROM trajectories GROUP BY 1) t USING (video_id)
LEFT JOIN (SELECT video_id, count(*) FILTER (WHERE kept AND NOT grounded) AS mcq,
                  count(*) FILTER (WHERE kept AND grounded) AS grounded, count(*) FILTER (WHERE NOT kept) AS rejected
           FROM qa_pairs GROUP BY 1) q USING (video_id)
ORDER BY v.video_id
