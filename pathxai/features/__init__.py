"""Morphometric features from masks, in physical units, at object, slide and patient level.

Every feature is declared once in a registry (:func:`list_features`) with its unit, level,
one-line definition, value on empty input and slide -> patient rule. Names follow
``{measure}__{object}[__in__|__of__|__to__{other}]`` (:mod:`pathxai.features.naming`), e.g.
``area_fraction__tumor``, ``density_per_mm2__lymphocyte__in__tumor``,
``fraction_within_50um__lymphocyte__of__tumor``, ``ratio__tumor__to__stroma``.

Entry points
------------
compute_features(masks, *, mpp, instances=None, tissue=None, image=None, extra_features=None)
    One slide from arrays -> Series.
features_from_folder(slide_dir, *, mpp=None) / features_table(masks_root, *, mpp=None)
    The plain mask layout -> Series / DataFrame (one row per slide, ``slide_id``).
object_table(...)
    Per-object measurements.
aggregate_patients(slide_table, slide_to_patient)
    Patient-level table.
read_mask_folder, read_label_map, read_qupath_geojson, read_hovernet_json
    Mask readers producing :class:`SlideMasks`.
"""

from __future__ import annotations

from pathxai.features.aggregate import aggregate_patients, aggregation_rules
from pathxai.features.compute import (
    compute_features,
    features_from_folder,
    features_table,
    object_table,
    write_table,
)
from pathxai.features.masks_io import (
    SlideMasks,
    read_hovernet_json,
    read_label_map,
    read_mask_folder,
    read_qupath_geojson,
)
from pathxai.features.naming import feature_name, slugify, split_feature_name
from pathxai.features.objects import morphometry_px
from pathxai.features.registry import (
    FeatureParams,
    FeatureSpec,
    clear_user_features,
    list_features,
    match_feature,
    register_feature,
)

__all__ = [
    "FeatureParams",
    "FeatureSpec",
    "SlideMasks",
    "aggregate_patients",
    "aggregation_rules",
    "clear_user_features",
    "compute_features",
    "feature_name",
    "features_from_folder",
    "features_table",
    "list_features",
    "match_feature",
    "morphometry_px",
    "object_table",
    "read_hovernet_json",
    "read_label_map",
    "read_mask_folder",
    "read_qupath_geojson",
    "register_feature",
    "slugify",
    "split_feature_name",
    "write_table",
]
