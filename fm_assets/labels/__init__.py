"""The pure labeling core: polars and numpy in and out. It imports neither dagster nor fm_resources
(tests/unit/test_layout.py keeps it so); each stage's knobs are one parameters dataclass (params.py)."""
