"""The declared feature table: every feature once, with unit, level, definition and rules.

Each :class:`FeatureSpec` is a *name pattern* (placeholders ``{region}``, ``{region2}``,
``{object}``, ``{object2}``, ``{other}``, ``{d}``), a unit, a level, the function that
computes it, a one-line definition, what it is when its input is empty, and the rule that
pools it from slides to a patient (see :mod:`pathxai.features.aggregate`).

Aggregation rules (placeholders are filled from the feature's own name):

* ``sum`` – pooled counts, areas and lengths;
* ``ratio:NUM/DEN`` – recomputed from pooled sums, e.g. an area fraction is
  sum(region area) / sum(tissue area) (area-weighted), a density is pooled count / pooled area;
* ``weighted_mean:W`` – mean of the slide values weighted by feature ``W`` (object counts for
  object-level statistics: object-weighted; areas for region-level shape indices);
* ``pooled_sd:MEAN:COUNT`` – exact pooled standard deviation from slide means, SDs and counts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from pathxai.exceptions import FeatureError
from pathxai.features.naming import SLUG_RE

__all__ = [
    "ESTABLISHED_PANEL",
    "FeatureParams",
    "FeatureSpec",
    "OBJECT_MEASURES",
    "PanelEntry",
    "TEXTURE_MEASURES",
    "builtin_features",
    "established_panel_patterns",
    "established_panel_table",
    "clear_user_features",
    "list_features",
    "match_feature",
    "register_feature",
    "user_features",
]

LEVELS = ("region", "object", "spatial", "texture", "slide")

_PLACEHOLDERS = {
    "region": SLUG_RE, "region2": SLUG_RE, "object": SLUG_RE, "object2": SLUG_RE,
    "other": SLUG_RE, "d": r"\d+(?:p\d+)?um",
}


@dataclass(frozen=True)
class FeatureParams:
    """Parameters of the built-in spatial features (all in µm).

    Attributes
    ----------
    distances_um : tuple of float
        Distances d for ``fraction_within_{d}`` / ``fraction_margin_{d}`` features.
    ripley_radii_um : tuple of float
        Radii r for Ripley's L.
    grid_um : float
        Side of the square grid cells for the Morisita–Horn index.
    delaunay_max_edge_um : float
        Delaunay edges longer than this are dropped from the cell graph.
    glcm_levels : int
        Grey levels of the haematoxylin OD quantisation for per-object GLCMs.
    h_od_max : float
        Haematoxylin optical density mapped to the top grey level (values above clip).
    """

    distances_um: tuple[float, ...] = (25.0, 50.0, 100.0)
    ripley_radii_um: tuple[float, ...] = (20.0, 50.0, 100.0)
    grid_um: float = 100.0
    delaunay_max_edge_um: float = 100.0
    glcm_levels: int = 8
    h_od_max: float = 0.15

    def __post_init__(self):
        for name in ("distances_um", "ripley_radii_um"):
            vals = getattr(self, name)
            if not vals or any(not (float(v) > 0 and math.isfinite(float(v))) for v in vals):
                raise FeatureError(f"{name} must be positive finite µm values; got {vals!r}")
        if not self.grid_um > 0 or not self.delaunay_max_edge_um > 0:
            raise FeatureError("grid_um and delaunay_max_edge_um must be > 0 µm")
        if not 2 <= int(self.glcm_levels) <= 64:
            raise FeatureError(f"glcm_levels must be in [2, 64]; got {self.glcm_levels}")

    @property
    def max_reach_um(self) -> float:
        """The largest distance any spatial feature looks at (sets the tile halo)."""
        return float(max(max(self.distances_um), max(self.ripley_radii_um)))


@dataclass(frozen=True)
class FeatureSpec:
    """One declared feature (or family of features sharing a name pattern).

    Attributes
    ----------
    name : str
        Name or pattern, e.g. ``"density_per_mm2__{object}__in__{region}"``.
    unit : str
        Physical unit (``"mm²"``, ``"µm"``, ``"1/mm²"``) or ``"1"`` for unit-free numbers.
    level : str
        ``region``, ``object``, ``spatial``, ``texture`` or ``slide``.
    definition : str
        One line saying exactly what is computed.
    function : str or callable
        ``"module:function"`` of the built-in computing it, or the user's callable
        ``f(slide, objects) -> float | Mapping[str, float]``.
    empty : str
        Value when the input is empty (``"0"`` or ``"NaN"`` and when).
    aggregation : str
        Slide -> patient rule (see module docstring).
    family : str
        Family for listings.
    """

    name: str
    unit: str
    level: str
    definition: str
    function: Any
    empty: str = "NaN"
    aggregation: str = "weighted_mean:area_mm2__tissue"
    family: str = ""
    _regex: re.Pattern = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self):
        problems = []
        if not isinstance(self.name, str) or not self.name:
            problems.append("name must be a non-empty string")
        if not isinstance(self.unit, str) or not self.unit.strip():
            problems.append("unit must be a non-empty string ('1' for unit-free)")
        if not isinstance(self.definition, str) or not self.definition.strip():
            problems.append("definition must be a non-empty one-line string")
        if self.level not in LEVELS:
            problems.append(f"level must be one of {LEVELS}; got {self.level!r}")
        if problems:
            raise FeatureError(f"feature {self.name!r}: " + "; ".join(problems))
        object.__setattr__(self, "_regex", _compile(self.name))

    def match(self, name: str) -> dict[str, str] | None:
        """Placeholder values if ``name`` is an instance of this pattern, else None."""
        m = self._regex.match(name)
        return None if m is None else m.groupdict()

    def aggregation_for(self, name: str) -> str:
        """The aggregation rule with placeholders filled from ``name``."""
        groups = self.match(name) or {}
        return self.aggregation.format(**groups)


def _compile(pattern: str) -> re.Pattern:
    out, pos = [], 0
    for m in re.finditer(r"\{(\w+)\}", pattern):
        out.append(re.escape(pattern[pos:m.start()]))
        key = m.group(1)
        if key not in _PLACEHOLDERS:
            raise FeatureError(
                f"feature pattern {pattern!r}: unknown placeholder {{{key}}}; "
                f"use one of {sorted(_PLACEHOLDERS)}"
            )
        out.append(f"(?P<{key}>{_PLACEHOLDERS[key]})")
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("^" + "".join(out) + "$")


# ----------------------------------------------------------------------------- built-ins
#: per-object shape measures: column of the object table -> (unit, definition)
OBJECT_MEASURES: dict[str, tuple[str, str]] = {
    "area_um2": ("µm²", "object area (pixel count × mpp²)"),
    "perimeter_um": ("µm", "object perimeter (Benkrid–Crookes estimate as skimage.measure.perimeter, 4-neighbourhood) × mpp"),
    "equivalent_diameter_um": ("µm", "diameter of the disk with the object's area"),
    "major_axis_um": ("µm", "major axis length of the moment ellipse (4·sqrt(λ1)) × mpp"),
    "minor_axis_um": ("µm", "minor axis length of the moment ellipse (4·sqrt(λ2)) × mpp"),
    "eccentricity": ("1", "eccentricity of the moment ellipse, sqrt(1 - λ2/λ1)"),
    "solidity": ("1", "area / convex-hull area (pixel centres in the hull of pixel-edge midpoints)"),
    "circularity": ("1", "4π·area/perimeter² (1 for a disk; can exceed 1 for tiny objects)"),
}
#: per-object intensity/texture measures (need the RGB image)
TEXTURE_MEASURES: dict[str, tuple[str, str]] = {
    "h_od": ("OD", "mean haematoxylin optical density of the object's pixels (skimage.color.rgb2hed)"),
    "e_od": ("OD", "mean eosin optical density of the object's pixels (skimage.color.rgb2hed)"),
    "glcm_contrast": ("1", "GLCM contrast of the object's quantised haematoxylin OD (distance 1 px, 4 angles pooled, symmetric)"),
    "glcm_homogeneity": ("1", "GLCM homogeneity of the object's quantised haematoxylin OD (as glcm_contrast)"),
    "glcm_energy": ("1", "GLCM energy (sqrt of ASM) of the object's quantised haematoxylin OD (as glcm_contrast)"),
    "glcm_correlation": ("1", "GLCM correlation of the object's quantised haematoxylin OD (as glcm_contrast; 1 for a constant object, as skimage)"),
}
_STATS = {
    "mean": ("mean over the objects of type {object}", "weighted_mean:count__{object}"),
    "sd": ("standard deviation (ddof=0) over the objects of type {object}", "pooled_sd:mean_{m}__{object}:count__{object}"),
    "median": ("median over the objects of type {object}", "weighted_mean:count__{object}"),
    "iqr": ("interquartile range (75th - 25th percentile) over the objects of type {object}", "weighted_mean:count__{object}"),
}

_R = "pathxai.features.slide_accumulator:accumulate_slide"
_O = "pathxai.features.slide_accumulator:accumulate_slide"
_S = "pathxai.features.spatial"
_T = "pathxai.features.texture"


def _builtin() -> list[FeatureSpec]:
    specs = [
        FeatureSpec("area_mm2__{region}", "mm²", "region", "area of the region: pixels × mpp² / 10⁶ (region = tissue for area_mm2__tissue)", _R, "0", "sum", "area"),
        FeatureSpec("area_fraction__{region}", "1", "region", "region area / tissue area", _R, "NaN when the tissue is empty; 0 when the region is", "ratio:area_mm2__{region}/area_mm2__tissue", "area"),
        FeatureSpec("ratio__{region}__to__{region2}", "1", "region", "area of the first region / area of the second", _R, "NaN when the second region is empty", "ratio:area_mm2__{region}/area_mm2__{region2}", "area"),
        FeatureSpec("n_components__{region}", "count", "region", "number of 8-connected components of the region", _R, "0", "sum", "shape"),
        FeatureSpec("perimeter_mm__{region}", "mm", "region", "region boundary length (Benkrid–Crookes estimate, skimage.measure.perimeter, 4-neighbourhood) × mpp / 1000", _R, "0", "sum", "shape"),
        FeatureSpec("compactness__{region}", "1", "region", "4π·area/perimeter² of the whole region (1 for one disk, lower when ragged or split)", _R, "NaN when the region is empty", "weighted_mean:area_mm2__{region}", "shape"),
        FeatureSpec("fragmentation_per_mm2__{region}", "1/mm²", "region", "connected components per mm² of the region", _R, "NaN when the region is empty", "ratio:n_components__{region}/area_mm2__{region}", "shape"),
        FeatureSpec("interface_length_mm__{region}__to__{region2}", "mm", "region", "length of the boundary shared by the two regions: 4-adjacent pixel pairs with one pixel in each (and not in both) × mpp / 1000", _R, "0", "sum", "shape"),
        FeatureSpec("count__all_objects", "count", "object", "number of objects of all types", _O, "0", "sum", "count"),
        FeatureSpec("count__{object}", "count", "object", "number of objects of the type (instance labels)", _O, "0", "sum", "count"),
        FeatureSpec("proportion__{object}", "1", "object", "objects of the type / objects of all types", _O, "NaN when there are no objects", "ratio:count__{object}/count__all_objects", "count"),
        FeatureSpec("density_per_mm2__{object}", "1/mm²", "object", "objects of the type per mm² of tissue", _O, "NaN when the tissue is empty", "ratio:count__{object}/area_mm2__tissue", "count"),
        FeatureSpec("count__{object}__in__{region}", "count", "object", "objects whose rounded centroid pixel (numpy.rint of the mean row, col; half to even) lies in the region", _O, "0", "sum", "count"),
        FeatureSpec("density_per_mm2__{object}__in__{region}", "1/mm²", "object", "objects whose rounded centroid pixel lies in the region / region area in mm²", _O, "NaN when the region is empty", "ratio:count__{object}__in__{region}/area_mm2__{region}", "count"),
        FeatureSpec("fraction__{object}__in__{region}", "1", "object", "share of the objects of the type whose rounded centroid pixel lies in the region", _O, "NaN when there are no objects of the type", "weighted_mean:count__{object}", "count"),
        FeatureSpec("fraction_within_{d}__{object}__of__{region}", "1", "spatial", "share of objects whose rounded centroid pixel is at most d µm (Euclidean distance transform, centre to centre) from the region; 0 µm inside it", f"{_S}:distance_lookups", "NaN when there are no objects of the type; 0 when the region is absent", "weighted_mean:count__{object}", "distance"),
        FeatureSpec("fraction_margin_{d}__{object}__of__{region}", "1", "spatial", "share of objects outside the region whose rounded centroid pixel is at most d µm from it (the invasive-margin band)", f"{_S}:distance_lookups", "NaN when there are no objects of the type; 0 when the region is absent", "weighted_mean:count__{object}", "distance"),
        FeatureSpec("mean_nn_distance_um__{object}", "µm", "spatial", "mean distance from each object to its nearest other object of the same type (centroids, cKDTree)", f"{_S}:nearest_neighbour_distances", "NaN with fewer than 2 objects", "weighted_mean:count__{object}", "nearest neighbour"),
        FeatureSpec("median_nn_distance_um__{object}", "µm", "spatial", "median distance from each object to its nearest other object of the same type", f"{_S}:nearest_neighbour_distances", "NaN with fewer than 2 objects", "weighted_mean:count__{object}", "nearest neighbour"),
        FeatureSpec("mean_nn_distance_um__{object}__to__{object2}", "µm", "spatial", "mean distance from each object of the first type to the nearest object of the second type", f"{_S}:nearest_neighbour_distances", "NaN when either type has no objects", "weighted_mean:count__{object}", "nearest neighbour"),
        FeatureSpec("ripley_l_{d}__{object}", "µm", "spatial", "Ripley's L(r) = sqrt(K(r)/π) at radius r, tissue as the window, border edge correction (centres ≥ r from the window edge), λ = n / tissue area; ≈ r under complete spatial randomness", f"{_S}:ripley_l", "NaN with fewer than 2 objects or no object ≥ r from the edge", "weighted_mean:count__{object}", "point pattern"),
        FeatureSpec("morisita_horn__{object}__to__{other}", "1", "spatial", "Morisita–Horn overlap of the two distributions on a square grid (grid_um cells): object counts, or region pixel counts when the second category is a region; 0 = segregated, 1 = same distribution", f"{_S}:morisita_horn", "NaN when either category is absent", "weighted_mean:count__{object}", "co-localisation"),
        FeatureSpec("delaunay_mean_degree__{object}", "count", "spatial", "mean number of Delaunay neighbours per object (edges ≤ delaunay_max_edge_um), all objects counted", f"{_S}:delaunay_graph", "NaN with fewer than 3 objects", "weighted_mean:count__{object}", "cell graph"),
        FeatureSpec("delaunay_mean_edge_um__{object}", "µm", "spatial", "mean length of the Delaunay edges (≤ delaunay_max_edge_um) between objects of the type", f"{_S}:delaunay_graph", "NaN with fewer than 3 objects or no edge kept", "weighted_mean:count__{object}", "cell graph"),
        FeatureSpec("delaunay_sd_edge_um__{object}", "µm", "spatial", "standard deviation (ddof=0) of the kept Delaunay edge lengths", f"{_S}:delaunay_graph", "NaN with fewer than 3 objects or no edge kept", "weighted_mean:count__{object}", "cell graph"),
        FeatureSpec("pixel_mean_h_od__{region}", "OD", "texture", "mean haematoxylin optical density (skimage.color.rgb2hed) over the region's pixels", f"{_T}:od_channels", "NaN when the region is empty or no image is given", "weighted_mean:area_mm2__{region}", "intensity"),
        FeatureSpec("pixel_mean_e_od__{region}", "OD", "texture", "mean eosin optical density (skimage.color.rgb2hed) over the region's pixels", f"{_T}:od_channels", "NaN when the region is empty or no image is given", "weighted_mean:area_mm2__{region}", "intensity"),
    ]
    for measures, level, func in ((OBJECT_MEASURES, "object", "pathxai.features.slide_accumulator:object_summary_features"),
                                  (TEXTURE_MEASURES, "texture", f"{_T}:object_texture")):
        for m, (unit, what) in measures.items():
            for stat, (sdef, agg) in _STATS.items():
                specs.append(FeatureSpec(
                    f"{stat}_{m}__{{object}}", unit, level,
                    f"{sdef.replace('{object}', 'the object')} of: {what}", func,
                    "NaN when there are no objects of the type",
                    agg.replace("{m}", m), "morphometry" if level == "object" else "intensity",
                ))
    return specs


_BUILTIN: list[FeatureSpec] = _builtin()
_USER: list[FeatureSpec] = []


def builtin_features() -> list[FeatureSpec]:
    """The built-in feature specs (a copy)."""
    return list(_BUILTIN)


def user_features() -> list[FeatureSpec]:
    """Feature specs added with :func:`register_feature` in this session (a copy)."""
    return list(_USER)


def _as_spec(obj: FeatureSpec | Mapping[str, Any]) -> FeatureSpec:
    if isinstance(obj, FeatureSpec):
        spec = obj
    elif isinstance(obj, Mapping):
        try:
            spec = FeatureSpec(**{"level": "slide", **dict(obj)})
        except TypeError as exc:
            raise FeatureError(
                f"extra feature {dict(obj).get('name')!r}: {exc}; give name, unit, definition, "
                "function (and optionally level, empty, aggregation)"
            ) from exc
    else:
        raise FeatureError(f"an extra feature must be a FeatureSpec or a mapping; got {type(obj).__name__}")
    if not callable(spec.function):
        raise FeatureError(f"extra feature {spec.name!r}: function must be callable f(slide, objects)")
    return spec


def register_feature(name: str, *, unit: str, definition: str,
                     function: Callable[..., float | Mapping[str, float]],
                     level: str = "slide", empty: str = "NaN",
                     aggregation: str = "weighted_mean:area_mm2__tissue") -> FeatureSpec:
    """Declare a user feature; it is then computed by every ``compute_features`` call.

    Parameters
    ----------
    name : str
        Feature name or pattern following :mod:`pathxai.features.naming`.
    unit, definition : str
        Required; a feature without them is refused.
    function : callable
        ``function(slide, objects)`` with ``slide`` a :class:`~pathxai.features.masks_io.SlideMasks`
        and ``objects`` the per-object table; returns a float, or a mapping of feature
        names (instances of ``name``) to floats. Masks read lazily from uncompressed TIFFs
        are :class:`~pathxai.features.masks_io.LazyMask`: use ``np.asarray(mask)`` or slices.
    level, empty, aggregation : str
        See :class:`FeatureSpec`.

    Returns
    -------
    FeatureSpec
    """
    spec = _as_spec(dict(name=name, unit=unit, definition=definition, function=function,
                         level=level, empty=empty, aggregation=aggregation))
    _USER[:] = [s for s in _USER if s.name != spec.name]
    _USER.append(spec)
    return spec


def clear_user_features() -> None:
    """Forget every feature added with :func:`register_feature`."""
    _USER.clear()


def normalise_extra(extra: Iterable[FeatureSpec | Mapping[str, Any]] | None) -> list[FeatureSpec]:
    """Validate ``extra_features`` given to a compute call (specs or mappings)."""
    return [_as_spec(e) for e in (extra or [])]


def match_feature(name: str, extra: Iterable[FeatureSpec] | None = None) -> FeatureSpec | None:
    """The spec whose pattern ``name`` instantiates (user/extra specs first), or None."""
    for spec in [*(extra or []), *_USER, *_BUILTIN]:
        if spec.match(name) is not None:
            return spec
    return None


def list_features(extra: Iterable[FeatureSpec | Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """The feature table.

    Parameters
    ----------
    extra : iterable of FeatureSpec or mapping, optional
        Extra features to include (as passed to ``compute_features``).

    Returns
    -------
    DataFrame
        One row per declared feature pattern: ``name``, ``unit``, ``level``, ``family``,
        ``definition``, ``empty``, ``aggregation``, ``function``, ``source``
        (``builtin`` or ``user``).
    """
    rows = []
    for src, specs in (("builtin", _BUILTIN), ("user", [*_USER, *normalise_extra(extra)])):
        for s in specs:
            fn = s.function if isinstance(s.function, str) else (
                f"{getattr(s.function, '__module__', '?')}:{getattr(s.function, '__qualname__', repr(s.function))}")
            rows.append({"name": s.name, "unit": s.unit, "level": s.level, "family": s.family,
                         "definition": s.definition, "empty": s.empty,
                         "aggregation": s.aggregation, "function": fn, "source": src})
    return pd.DataFrame(rows)


def with_family(spec: FeatureSpec, family: str) -> FeatureSpec:
    """A copy of ``spec`` with another family label."""
    return replace(spec, family=family)


# ----------------------------------------------------------------------------- primary panel
@dataclass(frozen=True)
class PanelEntry:
    """One pre-specified biomarker of :data:`ESTABLISHED_PANEL`.

    Attributes
    ----------
    name : str
        Short name of the marker (e.g. ``"tumour-stroma ratio"``).
    patterns : tuple of str
        :func:`fnmatch.fnmatchcase` patterns over feature names (see
        :mod:`pathxai.features.naming`); a feature matching any of them belongs to the
        entry. Several patterns cover the two orders of a symmetric pair
        (``ratio__tumor__to__stroma`` / ``ratio__stroma__to__tumor``), whichever the
        prompt order produced.
    rationale : str
        One line: why a pathologist would pre-register it.
    references : str
        Where the evidence comes from (author year, journal).
    """

    name: str
    patterns: tuple[str, ...]
    rationale: str
    references: str


#: Generic morphometric biomarkers with published prognostic evidence, written as
#: patterns over the feature naming scheme so that they apply to any prompt set: entries
#: whose categories a cohort did not segment simply match nothing (the statistics record
#: that as a note). :func:`pathxai.stats.analyze` uses it with ``primary_features=
#: "established"`` (the default of :func:`pathxai.run` / ``pathxai run`` / ``pathxai demo``):
#: the matched features form the *primary* (confirmatory) family of the
#: Benjamini-Hochberg correction, everything else is exploratory. The panel was chosen
#: from the literature cited, not from any cohort's results; changing it is a change of
#: the analysis plan and should be made (and recorded) before looking at outcomes.
ESTABLISHED_PANEL: tuple[PanelEntry, ...] = (
    PanelEntry("tumour-stroma ratio", ("ratio__tumor__to__stroma", "ratio__stroma__to__tumor"),
               "stroma-rich carcinomas have worse survival; scored on the same area ratio",
               "Mesker 2007 Cell Oncol; van Pelt 2018 Virchows Arch (scoring consensus)"),
    PanelEntry("stroma area fraction", ("area_fraction__stroma",),
               "stroma proportion of the tissue, the quantity behind the TSR cut-off (50 %)",
               "Huijbers 2013 Ann Oncol (VICTOR trial); Mesker 2007 Cell Oncol"),
    PanelEntry("tumour area fraction", ("area_fraction__tumor",),
               "tumour share of the tissue: tissue composition predicts outcome",
               "Kather 2019 PLoS Med"),
    PanelEntry("tumour necrosis fraction", ("area_fraction__necrosis",),
               "extent of tumour necrosis is an adverse prognostic factor",
               "Pollheimer 2010 Hum Pathol; Richards 2012 Br J Cancer (systematic review)"),
    PanelEntry("lymphoid aggregate fraction", ("area_fraction__lymphocytic_infiltrate",),
               "dense lymphoid infiltrates / aggregates (incl. tertiary lymphoid structures)",
               "Klintrup 2005 Eur J Cancer; Sautes-Fridman 2019 Nat Rev Cancer"),
    PanelEntry("intratumoral TIL density", ("density_per_mm2__lymphocyte__in__tumor",),
               "lymphocytes within tumour (core) per mm2: Immunoscore-type immune contexture",
               "Galon 2006 Science; Hendry 2017 Adv Anat Pathol"),
    PanelEntry("stromal TIL density", ("density_per_mm2__lymphocyte__in__stroma",),
               "stromal TILs, the internationally standardised TIL score",
               "Salgado 2015 Ann Oncol (International TILs Working Group)"),
    PanelEntry("intratumoral immune cell density", ("density_per_mm2__inflammatory_cell__in__tumor",),
               "the same for models that segment immune cells as one class (PanNuke-style)",
               "Hendry 2017 Adv Anat Pathol; Galon 2006 Science"),
    PanelEntry("stromal immune cell density", ("density_per_mm2__inflammatory_cell__in__stroma",),
               "stromal TILs when immune cells are one class",
               "Salgado 2015 Ann Oncol"),
    PanelEntry("tumour-associated macrophage density",
               ("density_per_mm2__macrophage__in__tumor", "density_per_mm2__macrophage__in__stroma"),
               "macrophage density in tumour and stroma (mostly adverse)",
               "Zhang 2012 PLoS One (meta-analysis)"),
    PanelEntry("invasive-margin lymphocytes", ("fraction_margin_100um__lymphocyte__of__tumor",),
               "share of lymphocytes in the 100 um band around the tumour (invasive margin)",
               "Galon 2006 Science; Klintrup 2005 Eur J Cancer"),
    PanelEntry("lymphocyte proportion", ("proportion__lymphocyte",),
               "lymphocytes among all cells, the cell-level immune score of image analyses",
               "Yuan 2012 Sci Transl Med; Saltz 2018 Cell Rep"),
    PanelEntry("immune-cancer co-localisation",
               ("morisita_horn__lymphocyte__to__neoplastic_cell",
                "morisita_horn__neoplastic_cell__to__lymphocyte"),
               "Morisita-Horn overlap of lymphocytes and cancer cells",
               "Maley 2015 Breast Cancer Res"),
    PanelEntry("tumour nuclear size", ("mean_area_um2__neoplastic_cell",),
               "nuclear enlargement, part of nuclear grade",
               "Elston & Ellis 1991 Histopathology"),
    PanelEntry("tumour nuclear pleomorphism", ("sd_area_um2__neoplastic_cell",),
               "variability of tumour nuclear size (pleomorphism)",
               "Elston & Ellis 1991 Histopathology; Beck 2011 Sci Transl Med"),
    PanelEntry("tumour cellularity", ("density_per_mm2__neoplastic_cell__in__tumor",),
               "tumour cells per mm2 of tumour",
               "Symmans 2007 J Clin Oncol (residual cancer burden)"),
    PanelEntry("mitotic density", ("density_per_mm2__mitotic_figure__in__tumor",),
               "mitoses per mm2 of tumour, the proliferation component of grade",
               "Elston & Ellis 1991 Histopathology"),
)


def established_panel_patterns() -> list[str]:
    """Every pattern of :data:`ESTABLISHED_PANEL`, in panel order."""
    return [p for e in ESTABLISHED_PANEL for p in e.patterns]


def established_panel_table() -> pd.DataFrame:
    """:data:`ESTABLISHED_PANEL` as a table (name, patterns, rationale, references)."""
    return pd.DataFrame([{"name": e.name, "patterns": ", ".join(e.patterns),
                          "rationale": e.rationale, "references": e.references}
                         for e in ESTABLISHED_PANEL])
