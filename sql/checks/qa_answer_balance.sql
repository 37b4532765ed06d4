-- asset: qa_pairs
-- severity: WARN
-- scope: dataset
-- Correct-answer letters of the kept multiple-choice questions, over the whole dataset, are uniform: Pearson's
-- chi-square against 1/4 each (3 degrees of freedom) must stay under 16.27 (p = 0.001); needs >= 40 questions.
WITH counts AS (
    SELECT l.letter, count(q.answer) AS n
    FROM (VALUES ('A'), ('B'), ('C'), ('D')) l(letter)
    LEFT JOIN (SELECT answer FROM qa_pairs WHERE kept AND NOT grounded) q ON q.answer = l.letter
    GROUP BY l.letter
), total AS (
    SELECT sum(n) AS total FROM counts
), stat AS (
    SELECT any_value(t.total) AS questions,
           sum((c.n - t.total / 4.0) ^ 2 / greatest(t.total / 4.0, 1e-9)) AS chi_square,
           map(list(c.letter ORDER BY c.letter), list(c.n ORDER BY c.letter)) AS letters
    FROM counts c, total t
)
SELECT questions, round(chi_square, 2) AS chi_square, letters
FROM stat
WHERE questions >= 40 AND chi_square > 16.27
