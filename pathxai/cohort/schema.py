"""The cohort manifest schema: every key, its type, default and meaning, in one table.

The same table drives validation (:mod:`pathxai.cohort.manifest`), the
documentation (``data_manifests/README.md``) and the JSON-schema-like file
``data_manifests/manifest.schema.json`` (:func:`json_schema`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "KeySpec",
    "TOP_LEVEL_KEYS",
    "SURVIVAL_KEYS",
    "TIME_UNITS",
    "DEFAULT_PROMPTS",
    "json_schema",
]

#: Time units a manifest may declare for survival times.
TIME_UNITS = ("days", "weeks", "months", "years")

#: Prompts used when a manifest names none (canonical category names).
DEFAULT_PROMPTS = [
    "tumor", "stroma", "necrosis", "adipose tissue", "lymphocytic infiltrate", "gland",
    "neoplastic cell", "lymphocyte", "connective tissue cell",
]


@dataclass(frozen=True)
class KeySpec:
    """One manifest key.

    Attributes
    ----------
    name : str
    type : str
        ``"str"``, ``"list[str]"``, ``"mapping"`` or ``"mapping[str, number]"``.
    required : bool
    default : Any
        Used when the key is absent (``None`` = no value).
    description : str
        One line for the documentation.
    """

    name: str
    type: str
    required: bool = False
    default: Any = None
    description: str = ""
    example: Any = field(default=None, compare=False)


TOP_LEVEL_KEYS: dict[str, KeySpec] = {k.name: k for k in [
    KeySpec("name", "str", description="Short cohort name shown in reports.",
            example="my-cohort"),
    KeySpec("description", "str", description="Free text.", example="Resected CRC, H&E"),
    KeySpec("slides", "str", required=True,
            description="Slides table (CSV, TSV or Parquet): one row per slide.",
            example="slides.csv"),
    KeySpec("clinical", "str", required=True,
            description="Clinical table (CSV, TSV or Parquet): one row per patient.",
            example="clinical.csv"),
    KeySpec("patient_id_column", "str", default="patient_id",
            description="Patient id column, in both tables."),
    KeySpec("slide_id_column", "str", default="slide_id",
            description="Slide id column of the slides table (unique)."),
    KeySpec("slide_path_column", "str", default="path",
            description="Slide file column; relative paths resolve against `slide_root`."),
    KeySpec("slide_root", "str", default=".",
            description="Folder that relative slide paths start from (itself relative to "
                        "the manifest's folder).", example="/data/slides"),
    KeySpec("mpp_column", "str",
            description="Optional slides-table column with a per-slide µm/px override "
                        "(empty cell = use the slide's metadata).", example="mpp"),
    KeySpec("mpp_overrides", "mapping[str, number]", default={},
            description="Per-slide µm/px overrides {slide_id: mpp}; win over `mpp_column`.",
            example={"S-017": 0.2526}),
    KeySpec("survival", "mapping",
            description="Survival outcome: `time_column`, `event_column`, `time_unit`. "
                        "Required unless `label_column` is given."),
    KeySpec("label_column", "str",
            description="Optional binary diagnostic label column of the clinical table.",
            example="label"),
    KeySpec("covariates", "list[str]", default=[],
            description="Clinical columns to adjust for (e.g. age, stage).",
            example=["age", "stage"]),
    KeySpec("prompts", "list[str]", default=list(DEFAULT_PROMPTS),
            description="What the segmentor is asked for, in words.",
            example=["tumor", "stroma", "lymphocytes"]),
]}

SURVIVAL_KEYS: dict[str, KeySpec] = {k.name: k for k in [
    KeySpec("time_column", "str", required=True,
            description="Follow-up time (numeric, ≥ 0) column of the clinical table.",
            example="time_months"),
    KeySpec("event_column", "str", required=True,
            description="Event indicator column: 1 = event observed, 0 = censored.",
            example="event"),
    KeySpec("time_unit", "str", required=True,
            description=f"Unit of the time column, one of {', '.join(TIME_UNITS)}.",
            example="months"),
]}


def _prop(spec: KeySpec) -> dict:
    if spec.type == "str":
        out: dict[str, Any] = {"type": "string"}
    elif spec.type == "list[str]":
        out = {"type": "array", "items": {"type": "string"}}
    elif spec.type == "mapping[str, number]":
        out = {"type": "object", "additionalProperties": {"type": "number",
                                                           "exclusiveMinimum": 0}}
    else:
        out = {"type": "object"}
    out["description"] = spec.description
    if spec.default not in (None, [], {}):
        out["default"] = spec.default
    return out


def json_schema() -> dict:
    """The manifest schema as a JSON-Schema (draft 2020-12) document.

    Returns
    -------
    dict
        Ready for ``json.dump``; ``pathxai.load_cohort`` applies the same rules
        and more (files, rows, ids).
    """
    props = {name: _prop(spec) for name, spec in TOP_LEVEL_KEYS.items()}
    props["survival"] = {
        "type": "object",
        "description": TOP_LEVEL_KEYS["survival"].description,
        "properties": {name: _prop(spec) for name, spec in SURVIVAL_KEYS.items()},
        "required": [n for n, s in SURVIVAL_KEYS.items() if s.required],
        "additionalProperties": False,
    }
    props["survival"]["properties"]["time_unit"]["enum"] = list(TIME_UNITS)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "pathxai cohort manifest",
        "type": "object",
        "properties": props,
        "required": [n for n, s in TOP_LEVEL_KEYS.items() if s.required],
        "anyOf": [{"required": ["survival"]}, {"required": ["label_column"]}],
        "additionalProperties": False,
    }
