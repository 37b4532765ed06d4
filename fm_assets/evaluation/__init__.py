"""Metrics and ground truth: multiple-choice accuracy (mcq), GroundMoRe's J&F (grounded), MOTA / IDF1 / HOTA
(mot, with TrackEval in mot_metrics). No printing and no argument parsing: fm_assets.cli does both."""
