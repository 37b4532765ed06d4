-- asset: qa_pairs
-- severity: WARN
-- scope: dataset
-- The mix of the five categories over the whole dataset stays within 15 points of FoundationMotion's reported
-- mix (motion recognition 34.9 %, location 25.0 %, temporal order 18.2 %, objects 11.6 %, repetition 10.3 %);
-- needs >= 50 kept multiple-choice questions.
WITH reference(category, share) AS (
    VALUES ('motion_recognition', 0.349), ('location_motion', 0.250), ('temporal_order', 0.182),
           ('motion_objects', 0.116), ('repetition_count', 0.103)
), mcq AS (
    SELECT category FROM qa_pairs WHERE kept AND NOT grounded
), mix AS (
    SELECT r.category, r.share AS reference_share,
           count(m.category) / greatest((SELECT count(*) FROM mcq), 1) AS share,
           (SELECT count(*) FROM mcq) AS total
    FROM reference r LEFT JOIN mcq m USING (category)
    GROUP BY r.category, r.share
)
SELECT category, round(share, 3) AS share, reference_share, round(share - reference_share, 3) AS difference, total
FROM mix
WHERE total >= 50 AND abs(share - reference_share) > 0.15
ORDER BY category
