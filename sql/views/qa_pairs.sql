-- One row per question: multiple-choice (grounded = false) or GroundMoRe-style grounded (answer = target_track_id
-- over [action_start_s, action_end_s]); LLM questions that contradict the facts are kept = false with reject_reason.
CREATE OR REPLACE VIEW qa_pairs AS
SELECT * FROM {parquet};
