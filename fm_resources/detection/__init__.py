"""Detectors: the protocol and its types (types.py, no Dagster), the Dagster resource that picks a backend
(resource.py), and the backends: the embedded `motion` detector (motion.py) and any mmdet 3.x model (mmdet.py)."""
