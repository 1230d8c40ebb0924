"""Synthetic H&E data with exact ground truth, and readers for image–mask indexes.

``render_patch`` draws one field of view (unlimited training data for the
segmentor); ``make_synthetic_cohort`` writes the built-in demo cohort (pyramidal
TIFF slides, ground-truth masks, clinical table with planted effects, manifest).
``read_index``, ``load_pair``, ``load_image`` (image–mask–label index tables)
live in :mod:`pathxai.datasets.index`. Names are imported lazily (PEP 562).
"""

from __future__ import annotations

from pathxai._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "render_patch": "pathxai.datasets.render:render_patch",
    "SyntheticPatch": "pathxai.datasets.render:SyntheticPatch",
    "Composition": "pathxai.datasets.render:Composition",
    "StainStyle": "pathxai.datasets.render:StainStyle",
    "TISSUE_CODES": "pathxai.datasets.render:TISSUE_CODES",
    "NUCLEUS_TYPE_CODES": "pathxai.datasets.render:NUCLEUS_TYPE_CODES",
    "make_synthetic_cohort": "pathxai.datasets.synthetic:make_synthetic_cohort",
    "write_pyramidal_tiff": "pathxai.datasets.synthetic:write_pyramidal_tiff",
    "OutcomeModel": "pathxai.datasets.outcomes:OutcomeModel",
    "simulate_outcomes": "pathxai.datasets.outcomes:simulate_outcomes",
    "slide_composition": "pathxai.datasets.composition:slide_composition",
    "PLANTED_FEATURES": "pathxai.datasets.composition:PLANTED_FEATURES",
    "read_index": "pathxai.datasets.index:read_index",
    "load_pair": "pathxai.datasets.index:load_pair",
    "load_image": "pathxai.datasets.index:load_image",
    "INDEX_COLUMNS": "pathxai.datasets.index:INDEX_COLUMNS",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports('pathxai.datasets', _LAZY, globals())
