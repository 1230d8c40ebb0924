"""Pre-specified primary hypotheses and the two-family multiplicity rule.

REMARK (McShane 2005) and TRIPOD (Collins 2015) ask that hypotheses fixed before the
outcome data were seen are reported as such and kept apart from exploratory findings.
:func:`resolve_primary` turns ``primary_features`` (names and/or :mod:`fnmatch` patterns,
or ``"established"`` for :data:`pathxai.features.registry.ESTABLISHED_PANEL`) into the
*primary* family; every other analysed feature is *exploratory*.
:func:`family_qvalues` applies Benjamini--Hochberg separately within each family (per
endpoint), so a pre-specified marker is not penalised for the hundreds of mostly redundant
exploratory features, and the exploratory screen is not made easier by the primary tests.

Under the global null, BH keeps the chance of any q < alpha at <= alpha *per family*
(exactly alpha for independent tests, and under positive dependence; Benjamini & Hochberg
1995, Benjamini & Yekutieli 2001), so the chance of a false discovery anywhere is at most
2 alpha; exploratory results are labelled as hypothesis-generating.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from pathxai.exceptions import StatsInputError
from pathxai.stats.univariable import bh_qvalues

__all__ = ["PRIMARY", "EXPLORATORY", "ESTABLISHED", "MULTIPLICITY_RULE", "PrimaryFamily",
           "resolve_primary", "family_qvalues", "parse_primary_option"]

PRIMARY = "primary"
EXPLORATORY = "exploratory"
#: the keyword selecting :data:`pathxai.features.registry.ESTABLISHED_PANEL`
ESTABLISHED = "established"

MULTIPLICITY_RULE = (
    "Benjamini-Hochberg within each family and endpoint: the {n_primary} pre-specified "
    "primary feature(s) form one family, the {n_exploratory} exploratory feature(s) another; "
    "q values are not comparable across families (per-family FDR <= {alpha})"
)
NO_PRIMARY_RULE = ("Benjamini-Hochberg across all {n_exploratory} tested features (one "
                   "exploratory family; no pre-specified primary features)")


@dataclass
class PrimaryFamily:
    """The resolved primary family.

    Attributes
    ----------
    features : list of str
        Analysed features in the primary family (feature-table order).
    requested : list of str
        The names/patterns as given (``"established"`` expanded to its patterns).
    panel_patterns : list of str
        Patterns that came from the established panel.
    notes : list of str
        Recorded, not fatal: panel patterns matching no feature, and primary features
        that matched only columns excluded before testing.
    """

    features: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    panel_patterns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def family_of(self, features: Iterable[str]) -> list[str]:
        """``'primary'`` or ``'exploratory'`` for each feature name."""
        prim = set(self.features)
        return [PRIMARY if f in prim else EXPLORATORY for f in features]


def parse_primary_option(text: str | None) -> str | list[str] | None:
    """The ``--primary`` command-line value as ``analyze(primary_features=...)`` takes it.

    ``none`` (or empty) -> None; ``established`` -> ``"established"``; otherwise a
    comma-separated list of names/patterns (which may include ``established``).
    """
    if text is None:
        return None
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items or [i.lower() for i in items] == ["none"]:
        return None
    if "none" in [i.lower() for i in items]:
        raise StatsInputError(
            f"--primary {text!r} mixes 'none' with feature names; give either 'none' or a "
            "comma-separated list of names/patterns")
    if items == [ESTABLISHED]:
        return ESTABLISHED
    return items


def _expand(spec: str | Sequence[str]) -> tuple[list[str], list[str]]:
    """(user patterns, panel patterns) of a ``primary_features`` value."""
    items = [spec] if isinstance(spec, str) else list(spec)
    if not items:
        raise StatsInputError("primary_features is empty; pass None for no primary family, "
                              "'established' for the built-in panel, or feature names/patterns")
    user: list[str] = []
    panel: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise StatsInputError(
                f"primary_features entries must be non-empty strings (feature names or "
                f"fnmatch patterns); got {item!r}")
        item = item.strip()
        if item == ESTABLISHED:
            from pathxai.features.registry import established_panel_patterns

            panel.extend(p for p in established_panel_patterns() if p not in panel)
        elif item not in user:
            user.append(item)
    return user, panel


def resolve_primary(spec: str | Sequence[str] | None, analysed: Sequence[str],
                    table_columns: Sequence[str] | None = None) -> PrimaryFamily:
    """Resolve ``primary_features`` against the feature columns.

    Parameters
    ----------
    spec : None, ``"established"``, or a sequence of feature names / fnmatch patterns
        (case-sensitive; the sequence may contain ``"established"`` to add the panel).
    analysed : the numeric feature columns that are tested.
    table_columns : every feature-table column (default ``analysed``); used to tell an
        unknown name from a known column that was excluded before testing.

    Returns
    -------
    PrimaryFamily

    Raises
    ------
    StatsInputError
        A user-given name/pattern matches no column of the feature table (all of them are
        listed, with close matches). Panel patterns that match nothing are recorded in
        ``notes`` instead: the panel is written for every prompt set, and a cohort that
        did not segment e.g. macrophages simply has no such feature.
    """
    fam = PrimaryFamily()
    if spec is None:
        return fam
    user, panel = _expand(spec)
    fam.requested = user + [p for p in panel if p not in user]
    fam.panel_patterns = panel
    analysed = list(analysed)
    cols = list(table_columns) if table_columns is not None else analysed
    unknown = []
    for pat in user:
        if not any(fnmatch.fnmatchcase(c, pat) for c in [*cols, *analysed]):
            close = difflib.get_close_matches(pat, cols, n=2, cutoff=0.6)
            unknown.append(f"{pat!r}" + (f" (did you mean {', '.join(map(repr, close))}?)"
                                         if close else ""))
    if unknown:
        raise StatsInputError(
            f"primary_features: {len(unknown)} name(s)/pattern(s) match no feature column: "
            f"{'; '.join(unknown)}. Use names from the feature table (`pathxai list-features` "
            "explains the naming scheme) or fnmatch patterns such as "
            "'density_per_mm2__lymphocyte__in__*'; pass 'established' for the built-in panel")
    chosen: set[str] = set()
    for pat in fam.requested:
        hits = [c for c in analysed if fnmatch.fnmatchcase(c, pat)]
        chosen.update(hits)
        if not hits:
            only_excluded = [c for c in cols if fnmatch.fnmatchcase(c, pat)]
            if only_excluded:
                fam.notes.append(f"primary pattern {pat!r} matches only column(s) excluded "
                                 f"before testing: {', '.join(only_excluded[:5])}")
            elif pat in panel:
                fam.notes.append(f"established-panel pattern {pat!r} matches no feature of "
                                 "this cohort (category not segmented)")
    fam.features = [c for c in analysed if c in chosen]
    return fam


def family_qvalues(p, family) -> np.ndarray:
    """Benjamini--Hochberg q values computed separately within each family.

    Parameters
    ----------
    p : array-like of p values (NaN = not tested; does not count as a test).
    family : array-like of family labels, same length.

    Returns
    -------
    ndarray of q values (NaN where p is NaN).
    """
    p = np.asarray(p, float)
    family = np.asarray(family, dtype=object)
    if p.shape != family.shape:
        raise StatsInputError(f"p ({p.shape}) and family ({family.shape}) differ in shape")
    q = np.full(p.shape, np.nan)
    for fam in dict.fromkeys(family.tolist()):
        m = family == fam
        q[m] = bh_qvalues(p[m])
    return q
