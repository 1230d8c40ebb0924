"""Cohort manifests: the YAML schema, loading and all-at-once validation.

``load_cohort(path)`` returns a :class:`Cohort` or raises one
:class:`~pathxai.exceptions.ManifestError` listing every problem with the file
and line it came from. The schema is documented in ``data_manifests/README.md``.
"""

from __future__ import annotations

from pathxai.cohort.manifest import Cohort, load_cohort, read_table
from pathxai.cohort.schema import (
    DEFAULT_PROMPTS,
    SURVIVAL_KEYS,
    TIME_UNITS,
    TOP_LEVEL_KEYS,
    json_schema,
)

__all__ = [
    "Cohort",
    "load_cohort",
    "read_table",
    "json_schema",
    "DEFAULT_PROMPTS",
    "TOP_LEVEL_KEYS",
    "SURVIVAL_KEYS",
    "TIME_UNITS",
]
