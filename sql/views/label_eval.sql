-- One row per `fm eval labels` run, video (and ALL over the videos when there are several) and group (scope
-- overall / category / q_type / kind): the yield (kept_clips, questions, mcq_per_clip, grounded_per_clip,
-- doubtful_pct) and n, correct, wrong, doubtful, unscored and precision = correct / (correct + wrong) of the
-- kept questions against ground-truth tracks. Every question's verdict and reason is in
-- label_eval/questions/<run_name>.parquet.
CREATE OR REPLACE VIEW label_eval AS
SELECT * FROM {parquet};
