-- One row per evaluated multiple-choice question per `fm eval mcq` run (eval_mcq/<run_name>.parquet): run_name,
-- model, baseline (blind / caption-only / null), context the model saw, split, qa_id, category, answer, predicted
-- (null when the reply did not parse), raw_reply, valid, correct, error (no reply after retries), tokens, cost.
CREATE OR REPLACE VIEW eval_mcq AS
SELECT * FROM {parquet};
