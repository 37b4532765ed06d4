"""The training-data exports (common.py documents the formats): common.py plans the clips, cuts them from the
source videos and writes the manifest; one module per format writes its own files."""

from fm_assets.export.common import ExportError, lake_sources, split_map
from fm_assets.export.fm_json import export_fm_json, reference_trajectory
from fm_assets.export.groundmore import davis_palette, export_groundmore, groundmore_vid, palette_png, question_masks
from fm_assets.export.llamafactory import export_llamafactory, grounded_answer, grounded_prompt, mcq_prompt
from fm_assets.export.mot import export_mot

__all__ = [
    "ExportError",
    "davis_palette",
    "export_fm_json",
    "export_groundmore",
    "export_llamafactory",
    "export_mot",
    "grounded_answer",
    "grounded_prompt",
    "groundmore_vid",
    "lake_sources",
    "mcq_prompt",
    "palette_png",
    "question_masks",
    "reference_trajectory",
    "split_map",
]
