"""Dagster wiring, one module per stage: each adapts resources and config to calls of the core (fm_assets.labels).
fm_assets/definitions.py merges them into the code location."""
