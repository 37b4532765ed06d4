"""fm: raw video -> motion-understanding training data, as a Dagster asset graph.

labels/      the pure labeling core (no Dagster, no fm_resources)
defs/        Dagster wiring, one module per stage; definitions.py merges them
evaluation/  metrics and ground truth;  export/  the training-data formats;  synthetic/  scenes with known truth
cli/         the `fm` command (the only package that prints or parses arguments)
"""
