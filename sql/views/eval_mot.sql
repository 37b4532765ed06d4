-- One row per `fm eval mot` run and sequence, plus a COMBINED row per run (TrackEval's combination over the
-- sequences): MOTA, MOTP, IDF1, HOTA, DetA, AssA (fractions in [0, 1]), IDSW, FP, FN, MT, ML, status.
CREATE OR REPLACE VIEW eval_mot AS
SELECT * FROM {parquet};
