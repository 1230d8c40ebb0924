"""pathxai: from pathology slides and a clinical table to candidate imaging biomarkers.

The public API is imported lazily (PEP 562), so ``import pathxai`` is fast and
pulls torch, lifelines or shap only when the piece that needs them is used.

Main entry points
-----------------
open_slide(path_or_array, mpp=None)
    One reader for OpenSlide formats, (OME-)TIFF, PNG/JPEG and numpy arrays.
load_cohort(manifest_path)
    Validate a cohort manifest (every problem reported at once).
Segmentor
    Text-prompted segmentation: ``Segmentor.from_pretrained("default")``.
parse_prompt(text)
    Free text to canonical ontology label(s).
compute_features(...)
    Morphometric features in physical units from masks.
analyze(...)
    Survival/diagnostic statistics, SHAP on held-out data, ranked biomarkers.
run(manifest, out_dir)
    The whole cohort pipeline, cached and resumable, ending in report.html.
"""

from __future__ import annotations

import importlib
from typing import Any

from pathxai._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> "module:attribute"
_LAZY: dict[str, str] = {
    "open_slide": "pathxai.slides:open_slide",
    "SlideReader": "pathxai.slides:SlideReader",
    "tissue_mask": "pathxai.slides:tissue_mask",
    "iter_tiles": "pathxai.slides:iter_tiles",
    "load_cohort": "pathxai.cohort:load_cohort",
    "Cohort": "pathxai.cohort:Cohort",
    "make_synthetic_cohort": "pathxai.datasets:make_synthetic_cohort",
    "Segmentor": "pathxai.segment:Segmentor",
    "parse_prompt": "pathxai.segment:parse_prompt",
    "compute_features": "pathxai.features:compute_features",
    "list_features": "pathxai.features:list_features",
    "analyze": "pathxai.stats:analyze",
    "run": "pathxai.pipeline:run",
    "render_patch": "pathxai.datasets:render_patch",
    "StainSegmentor": "pathxai.segment:StainSegmentor",
    "features_table": "pathxai.features:features_table",
    "aggregate_patients": "pathxai.features:aggregate_patients",
    "render_report": "pathxai.report:render_report",
}

_SUBMODULES = {
    "slides", "cohort", "datasets", "segment", "features", "stats", "report",
    "pipeline", "exceptions",
}

__all__ = ["__version__", *sorted(_LAZY), *sorted(_SUBMODULES)]

_lazy_getattr, _lazy_dir = lazy_exports("pathxai", _LAZY, globals())


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f"pathxai.{name}")
        globals()[name] = module
        return module
    return _lazy_getattr(name)


__dir__ = _lazy_dir
