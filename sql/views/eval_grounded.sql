-- One row per `fm eval grounded` run and q_type (causal, sequential, counterfactual, descriptive, overall):
-- questions, missing / broken / partial predictions, and GroundMoRe's J, F and J&F (= JF) in percent.
-- Every question's scores (J, F, JF in [0, 1], status, problems) are in eval_grounded/questions/<run_name>.parquet.
CREATE OR REPLACE VIEW eval_grounded AS
SELECT * FROM {parquet};
