"""Load and validate a cohort manifest: every problem found, reported at once.

:func:`load_cohort` reads the YAML manifest, its slides and clinical tables, and
checks keys, columns, ids, files, times, events, labels and µm/px values before
any work starts. All problems are collected and raised together as one
:class:`~pathxai.exceptions.ManifestError`, each naming where it came from:
``manifest.yaml:7`` (line of the key), ``slides.csv:12`` (line of the row, the
header being line 1) or ``clinical.parquet row 3`` (1-based data row).
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pathxai.cohort.schema import SURVIVAL_KEYS, TIME_UNITS, TOP_LEVEL_KEYS
from pathxai.exceptions import ManifestError

__all__ = ["Cohort", "load_cohort", "read_table"]

_TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".parquet": "parquet",
                   ".pq": "parquet"}
_MAX_PER_KIND = 20  # list at most this many problems of one kind (plus a count)


@dataclass
class Cohort:
    """A validated cohort.

    Attributes
    ----------
    slides : DataFrame
        One row per slide: ``slide_id`` (str), ``patient_id`` (str), ``path``
        (absolute str), ``mpp`` (float µm/px override, NaN = use slide metadata).
    clinical : DataFrame
        One row per patient, patient id column renamed ``patient_id`` (str); time
        as float, event as int 0/1; other columns as in the table.
    patient_col, slide_col : str
        ``"patient_id"`` and ``"slide_id"``.
    time_col, event_col : str or None
        Survival columns of ``clinical`` (None when the manifest has no survival).
    time_unit : str or None
        One of days, weeks, months, years.
    label_col : str or None
        Binary diagnostic label column of ``clinical``.
    covariates : list of str
    prompts : list of str
    root : Path
        The manifest's folder (relative paths resolve against it).
    manifest_path : Path
    name : str
    source_columns : dict
        The manifest's original id column names (``patient``, ``slide``, ``path``).
    warnings : list of str
        Non-fatal remarks (e.g. missing covariate values).
    """

    slides: pd.DataFrame
    clinical: pd.DataFrame
    patient_col: str
    slide_col: str
    time_col: str | None
    time_unit: str | None
    event_col: str | None
    label_col: str | None
    covariates: list[str]
    prompts: list[str]
    root: Path
    manifest_path: Path
    name: str = ""
    source_columns: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def n_patients(self) -> int:
        """Number of patients."""
        return int(len(self.clinical))

    @property
    def n_slides(self) -> int:
        """Number of slides."""
        return int(len(self.slides))

    def slides_of(self, patient_id: str) -> pd.DataFrame:
        """The slides rows of one patient."""
        return self.slides[self.slides["patient_id"] == str(patient_id)]

    def summary(self) -> dict[str, Any]:
        """Counts and follow-up of the cohort.

        Returns
        -------
        dict
            ``name, n_patients, n_slides, n_events`` (None without survival),
            ``median_follow_up`` (reverse Kaplan–Meier median: the time by which
            half of the patients would have been censored had none had the event;
            None without survival or when not reached), ``time_unit``,
            ``median_time_observed`` (plain median of the observed times),
            ``n_label_positive`` (None without label), ``covariates``, ``n_prompts``.
        """
        out: dict[str, Any] = {
            "name": self.name, "n_patients": self.n_patients, "n_slides": self.n_slides,
            "n_events": None, "median_follow_up": None, "median_time_observed": None,
            "time_unit": self.time_unit,
            "n_label_positive": None, "covariates": list(self.covariates),
            "n_prompts": len(self.prompts),
        }
        if self.time_col and self.event_col:
            t = self.clinical[self.time_col].to_numpy(float)
            e = self.clinical[self.event_col].to_numpy(int)
            out["n_events"] = int(e.sum())
            out["median_follow_up"] = _km_median(t, 1 - e)
            out["median_time_observed"] = float(np.median(t))
        if self.label_col:
            lab = self.clinical[self.label_col]
            values = sorted(lab.dropna().unique().tolist(), key=str)
            if values:
                out["n_label_positive"] = int((lab == values[-1]).sum())
        return out

    def summary_line(self) -> str:
        """The summary in one line of text."""
        s = self.summary()
        parts = [f"{s['n_patients']} patients", f"{s['n_slides']} slides"]
        if s["n_events"] is not None:
            parts.append(f"{s['n_events']} events")
            fu = s["median_follow_up"]
            parts.append("median follow-up " + (f"{fu:.1f} {s['time_unit']}" if fu is not None
                                                else "not reached"))
        if s["n_label_positive"] is not None:
            parts.append(f"{s['n_label_positive']} label-positive")
        name = f"{self.name}: " if self.name else ""
        return f"{name}{', '.join(parts)}"

    def __repr__(self) -> str:
        return f"Cohort({self.summary_line()!r}, manifest={str(self.manifest_path)!r})"


def _km_median(time: np.ndarray, event: np.ndarray) -> float | None:
    """Median of a Kaplan–Meier curve (first time S(t) <= 0.5), None if not reached."""
    order = np.argsort(time, kind="stable")
    t, e = time[order], event[order]
    uniq = np.unique(t)
    at_risk = len(t) - np.searchsorted(t, uniq, side="left")
    d = np.bincount(np.searchsorted(uniq, t), weights=e, minlength=uniq.size)
    surv = np.cumprod(1.0 - d / at_risk)
    hit = np.flatnonzero(surv <= 0.5)
    return float(uniq[hit[0]]) if hit.size else None


# --------------------------------------------------------------------------- helpers


class _Problems:
    """Collects problems, capping each kind so a broken 10,000-row table stays readable."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._kinds: dict[str, int] = {}

    def add(self, msg: str, kind: str | None = None) -> None:
        if kind is not None:
            n = self._kinds.get(kind, 0) + 1
            self._kinds[kind] = n
            if n > _MAX_PER_KIND:
                return
        self.items.append(msg)

    def finish(self) -> list[str]:
        extra = [f"... and {n - _MAX_PER_KIND} more of this kind: {k}"
                 for k, n in self._kinds.items() if n > _MAX_PER_KIND]
        return self.items + extra

    def __bool__(self) -> bool:
        return bool(self.items)


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=3, cutoff=0.6)
    if not close:
        low = {str(o).lower(): str(o) for o in options}
        if str(word).lower() in low:
            close = [low[str(word).lower()]]
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def _key_lines(text: str) -> tuple[dict[str, int], list[tuple[str, int, int]]]:
    """Line (1-based) of each top-level key and ``survival.<key>``, and repeated keys.

    Returns
    -------
    lines : dict
        Key (``"survival.time_column"`` for nested) -> line of its first occurrence.
    repeats : list of (key, first line, repeated line)
        YAML silently keeps the last of repeated keys; they are reported instead.
    """
    import yaml

    lines: dict[str, int] = {}
    repeats: list[tuple[str, int, int]] = []
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines, repeats

    def visit(mapping, prefix: str) -> None:
        for k, v in mapping.value:
            key = f"{prefix}{k.value}"
            line = k.start_mark.line + 1
            if key in lines:
                repeats.append((key, lines[key], line))
            else:
                lines[key] = line
            if not prefix and isinstance(v, yaml.MappingNode) and key == "survival":
                visit(v, "survival.")

    if isinstance(node, yaml.MappingNode):
        visit(node, "")
    return lines, repeats


def read_table(path: Path) -> tuple[pd.DataFrame, str]:
    """Read a CSV/TSV (all cells as text) or Parquet table.

    Parameters
    ----------
    path : Path

    Returns
    -------
    table : DataFrame
        CSV/TSV cells are strings (empty cells NaN) so that validation can name
        the exact bad text; Parquet keeps its types.
    kind : {"csv", "tsv", "parquet"}

    Raises
    ------
    ValueError
        Unknown suffix or unparsable file (message says why).
    """
    kind = _TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"unsupported table format {path.suffix!r}; use .csv, .tsv or .parquet")
    if kind == "parquet":
        return pd.read_parquet(path), kind
    sep = "," if kind == "csv" else "\t"
    df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""],
                     skipinitialspace=True)
    df.columns = [str(c).strip() for c in df.columns]
    return df, kind


def _row_ref(label: str, kind: str, i: int) -> str:
    """Where data row ``i`` (0-based) came from: file line for text, row for Parquet."""
    return f"{label}:{i + 2}" if kind in ("csv", "tsv") else f"{label} row {i + 1}"


def _text(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip()


# --------------------------------------------------------------------------- loader


def load_cohort(path: str | os.PathLike) -> Cohort:
    """Load a cohort manifest and validate everything before any work.

    Parameters
    ----------
    path : path-like
        The manifest YAML (schema: ``data_manifests/README.md``). Relative table
        paths resolve against its folder; relative slide paths against
        ``slide_root`` (default: the manifest's folder).

    Returns
    -------
    Cohort

    Raises
    ------
    ManifestError
        Listing every problem found (unreadable YAML, unknown or missing keys
        with close-name suggestions, missing tables or columns, missing /
        empty / unreadable slide files, duplicate ids, slides without a patient,
        patients without a slide, bad times, events, labels or µm/px values),
        each with the file and line or row it came from.
    """
    import yaml

    mpath = Path(path).expanduser()
    label = mpath.name
    if not mpath.exists():
        raise ManifestError([f"manifest file not found: {str(mpath)!r}"], mpath)
    if not mpath.is_file():
        raise ManifestError([f"manifest path is not a file: {str(mpath)!r}"], mpath)
    try:
        text = mpath.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError([f"cannot read manifest: {exc}"], mpath) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{label}:{mark.line + 1}" if mark is not None else label
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError([f"{where}: invalid YAML: {problem}"], mpath) from None
    if not isinstance(doc, dict):
        raise ManifestError([f"{label}: the manifest must be a mapping of keys to values "
                             f"(got {type(doc).__name__}); see data_manifests/README.md"],
                            mpath)
    mpath = mpath.resolve()
    root = mpath.parent
    lines, repeats = _key_lines(text)
    probs = _Problems()
    for key, first_line, line in repeats:
        probs.add(f"{label}:{line}: key {key!r} is given twice (first at {label}:{first_line}); "
                  "keep one")

    def at(key: str) -> str:
        return f"{label}:{lines[key]}" if key in lines else label

    cfg = _check_keys(doc, probs, at, label)
    slides_df, slides_kind, slides_label = _load_table(cfg.get("slides"), "slides", root,
                                                       probs, at)
    clin_df, clin_kind, clin_label = _load_table(cfg.get("clinical"), "clinical", root,
                                                 probs, at)
    pcol, scol, pathcol = cfg["patient_id_column"], cfg["slide_id_column"], \
        cfg["slide_path_column"]
    surv = cfg.get("survival") or {}
    tcol, ecol = surv.get("time_column"), surv.get("event_column")
    lcol, mcol = cfg.get("label_column"), cfg.get("mpp_column")
    covs = cfg.get("covariates") or []

    slides_ok = clin_ok = False
    if slides_df is not None:
        need = {"slide_id_column": scol, "patient_id_column": pcol,
                "slide_path_column": pathcol}
        if mcol:
            need["mpp_column"] = mcol
        slides_ok = _check_columns(slides_df, need, slides_label, probs, at)
    if clin_df is not None:
        need = {"patient_id_column": pcol}
        if tcol:
            need["survival.time_column"] = tcol
        if ecol:
            need["survival.event_column"] = ecol
        if lcol:
            need["label_column"] = lcol
        for c in covs:
            need[f"covariates ({c})"] = c
        clin_ok = _check_columns(clin_df, need, clin_label, probs, at)

    slide_root = root
    if cfg.get("slide_root"):
        slide_root = (root / Path(cfg["slide_root"]).expanduser()).resolve()
        if not slide_root.is_dir():
            probs.add(f"{at('slide_root')}: slide_root {cfg['slide_root']!r} is not a folder "
                      f"(resolved to {str(slide_root)!r})")

    slides_out = clinical_out = None
    warnings: list[str] = []
    if slides_ok:
        slides_out = _check_slides(slides_df, slides_kind, slides_label, scol, pcol, pathcol,
                                   mcol, slide_root, probs)
    if clin_ok:
        clinical_out = _check_clinical(clin_df, clin_kind, clin_label, pcol, tcol, ecol, lcol,
                                       covs, probs, warnings)
    if slides_out is not None and clinical_out is not None:
        _check_links(slides_out, clinical_out, slides_kind, slides_label, clin_kind, clin_label,
                     probs)
    if slides_out is not None:
        _apply_overrides(slides_out, cfg.get("mpp_overrides") or {}, probs, at)

    if probs:
        raise ManifestError(probs.finish(), mpath)
    if slides_out is None or clinical_out is None:  # unreachable: each None adds a problem
        raise ManifestError([f"{label}: slides or clinical table could not be loaded"], mpath)
    return Cohort(
        slides=slides_out.drop(columns="_row").reset_index(drop=True),
        clinical=clinical_out.drop(columns="_row").reset_index(drop=True),
        patient_col="patient_id", slide_col="slide_id", time_col=tcol,
        time_unit=surv.get("time_unit"), event_col=ecol, label_col=lcol,
        covariates=list(covs), prompts=list(cfg["prompts"]), root=root, manifest_path=mpath,
        name=str(cfg.get("name") or mpath.parent.name),
        source_columns={"patient": pcol, "slide": scol, "path": pathcol},
        warnings=warnings,
    )


def _check_keys(doc: dict, probs: _Problems, at, label: str) -> dict:
    """Keys, types and defaults of the manifest mapping."""
    cfg: dict[str, Any] = {}
    for key in doc:
        if key not in TOP_LEVEL_KEYS:
            probs.add(f"{at(str(key))}: unknown key {key!r}"
                      f"{_suggest(str(key), list(TOP_LEVEL_KEYS))}; allowed keys: "
                      f"{', '.join(TOP_LEVEL_KEYS)}")
    for name, spec in TOP_LEVEL_KEYS.items():
        if name not in doc or doc[name] is None:
            if spec.required:
                probs.add(f"{label}: missing required key {name!r} ({spec.description})")
            cfg[name] = spec.default if not isinstance(spec.default, (list, dict)) \
                else type(spec.default)(spec.default)
            continue
        value = doc[name]
        if spec.type == "str":
            if isinstance(value, (dict, list)) or value == "":
                probs.add(f"{at(name)}: {name!r} must be a non-empty text value, got {value!r}")
                value = spec.default
            else:
                value = str(value)
        elif spec.type == "list[str]":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(
                isinstance(v, (str, int, float)) and str(v).strip() for v in value
            ):
                probs.add(f"{at(name)}: {name!r} must be a list of non-empty names, "
                          f"got {value!r}")
                value = list(spec.default or [])
            else:
                value = [str(v).strip() for v in value]
        elif spec.type.startswith("mapping"):
            if not isinstance(value, dict):
                probs.add(f"{at(name)}: {name!r} must be a mapping (key: value lines), "
                          f"got {value!r}")
                value = {} if name != "survival" else None
        cfg[name] = value
    surv = cfg.get("survival")
    if surv is not None:
        for key in surv:
            if key not in SURVIVAL_KEYS:
                probs.add(f"{at('survival.' + str(key))}: unknown key 'survival.{key}'"
                          f"{_suggest(str(key), list(SURVIVAL_KEYS))}; allowed: "
                          f"{', '.join(SURVIVAL_KEYS)}")
        clean: dict[str, Any] = {}
        for key, spec in SURVIVAL_KEYS.items():
            v = surv.get(key)
            if v is None or isinstance(v, (dict, list)) or str(v).strip() == "":
                probs.add(f"{at('survival')}: missing or empty 'survival.{key}' "
                          f"({spec.description})")
                continue
            clean[key] = str(v).strip()
        unit = clean.get("time_unit")
        if unit is not None:
            if unit.lower() not in TIME_UNITS:
                probs.add(f"{at('survival.time_unit')}: time_unit {unit!r} is not one of "
                          f"{', '.join(TIME_UNITS)}{_suggest(unit.lower(), list(TIME_UNITS))}")
            clean["time_unit"] = unit.lower()
        cfg["survival"] = clean
    elif not cfg.get("label_column") and "survival" not in doc:
        probs.add(f"{label}: no outcome: give 'survival' (time_column, event_column, "
                  "time_unit) and/or 'label_column'")
    return cfg


def _load_table(value: Any, what: str, root: Path, probs: _Problems, at):
    if not value:
        return None, "", what
    p = (root / Path(str(value)).expanduser()).resolve()
    lab = Path(str(value)).name
    if not p.exists():
        probs.add(f"{at(what)}: {what} table {str(value)!r} not found "
                  f"(resolved to {str(p)!r} from the manifest's folder)")
        return None, "", lab
    if not p.is_file():
        probs.add(f"{at(what)}: {what} table {str(value)!r} is not a file ({str(p)!r})")
        return None, "", lab
    try:
        df, kind = read_table(p)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a problem to report
        probs.add(f"{at(what)}: cannot read {what} table {str(p)!r}: "
                  f"{type(exc).__name__}: {exc}")
        return None, "", lab
    if df.empty:
        probs.add(f"{at(what)}: {what} table {str(p)!r} has no data rows")
        return None, "", lab
    return df, kind, lab


def _check_columns(df: pd.DataFrame, need: dict[str, str], tlabel: str, probs: _Problems,
                   at) -> bool:
    ok = True
    cols = [str(c) for c in df.columns]
    for key, col in need.items():
        if col not in cols:
            ok = False
            probs.add(f"{tlabel}:1: column {col!r} (manifest {key!r}, {at(key.split(' ')[0])}) "
                      f"not found{_suggest(col, cols)}; columns are: {', '.join(cols)}")
    return ok


def _ids(series: pd.Series) -> pd.Series:
    return series.map(_text)


def _check_slides(df, kind, tlabel, scol, pcol, pathcol, mcol, slide_root: Path,
                  probs: _Problems) -> pd.DataFrame:
    out = pd.DataFrame({
        "slide_id": _ids(df[scol]), "patient_id": _ids(df[pcol]),
        "path": "", "mpp": np.nan, "_row": np.arange(len(df)),
    })
    first: dict[str, int] = {}
    for i, (sid, pid, raw) in enumerate(zip(out["slide_id"], out["patient_id"], df[pathcol])):
        ref = _row_ref(tlabel, kind, i)
        if not sid:
            probs.add(f"{ref}: empty slide id in column {scol!r}", "empty slide id")
        elif sid in first:
            probs.add(f"{ref}: duplicate slide id {sid!r} (first at "
                      f"{_row_ref(tlabel, kind, first[sid])})", "duplicate slide id")
        else:
            first[sid] = i
        if not pid:
            probs.add(f"{ref}: slide {sid!r} has an empty patient id in column {pcol!r}",
                      "empty patient id")
        rawp = _text(raw)
        if not rawp:
            probs.add(f"{ref}: slide {sid!r} has an empty path in column {pathcol!r}",
                      "empty slide path")
            continue
        p = Path(os.path.expandvars(rawp)).expanduser()
        p = (slide_root / p) if not p.is_absolute() else p
        p = Path(os.path.abspath(p))
        out.iat[i, 2] = str(p)
        problem = _file_problem(p)
        if problem:
            probs.add(f"{ref}: slide {sid!r}: {problem} ({rawp!r} resolved to {str(p)!r})",
                      "slide file")
    if mcol:
        vals = df[mcol]
        for i, v in enumerate(vals):
            txt = _text(v)
            if not txt:
                continue
            try:
                m = float(txt)
            except ValueError:
                m = math.nan
            if not math.isfinite(m) or m <= 0:
                probs.add(f"{_row_ref(tlabel, kind, i)}: slide {out.iat[i, 0]!r}: µm/px "
                          f"{txt!r} in column {mcol!r} must be a positive number "
                          "(leave the cell empty to use the slide's metadata)", "bad mpp")
            else:
                out.iat[i, 3] = m
    return out


def _file_problem(p: Path) -> str | None:
    """Why a slide path is unusable, or None (cheap checks only; no slide is opened)."""
    try:
        if not p.exists():
            return "file not found"
        if p.is_dir():
            # a folder-based slide format (e.g. MIRAX data folder, DICOM series) is fine
            # when not empty
            return None if any(p.iterdir()) else "is an empty folder"
        if not p.is_file():
            return "is not a regular file"
        if p.stat().st_size == 0:
            return "file is empty (0 bytes)"
        if not os.access(p, os.R_OK):
            return "file is not readable (permission denied)"
        with open(p, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        return f"cannot access the file: {exc.strerror or exc}"
    return None


def _check_clinical(df, kind, tlabel, pcol, tcol, ecol, lcol, covs, probs: _Problems,
                    warnings: list[str]) -> pd.DataFrame:
    out = df.copy()
    out = out.rename(columns={pcol: "patient_id"})
    out["patient_id"] = _ids(df[pcol])
    out["_row"] = np.arange(len(df))
    first: dict[str, int] = {}
    for i, pid in enumerate(out["patient_id"]):
        ref = _row_ref(tlabel, kind, i)
        if not pid:
            probs.add(f"{ref}: empty patient id in column {pcol!r}", "empty patient id")
        elif pid in first:
            probs.add(f"{ref}: duplicate patient {pid!r} (first at "
                      f"{_row_ref(tlabel, kind, first[pid])}); the clinical table needs one "
                      "row per patient", "duplicate patient")
        else:
            first[pid] = i
    if tcol:
        times = np.full(len(df), np.nan)
        for i, v in enumerate(df[tcol]):
            txt = _text(v)
            ref = _row_ref(tlabel, kind, i)
            pid = out["patient_id"].iat[i]
            try:
                t = float(txt) if txt else math.nan
            except ValueError:
                probs.add(f"{ref}: patient {pid!r}: time {txt!r} in column {tcol!r} is not a "
                          "number", "bad time")
                continue
            if not txt or math.isnan(t):
                probs.add(f"{ref}: patient {pid!r}: missing time in column {tcol!r}",
                          "bad time")
            elif not math.isfinite(t) or t < 0:
                probs.add(f"{ref}: patient {pid!r}: time {txt!r} in column {tcol!r} must be "
                          "a finite number >= 0", "bad time")
            else:
                times[i] = t
        out[tcol] = times
    if ecol:
        events = np.zeros(len(df), dtype=int)
        for i, v in enumerate(df[ecol]):
            txt = _text(v)
            ev = _as_event(v, txt)
            if ev is None:
                probs.add(f"{_row_ref(tlabel, kind, i)}: patient {out['patient_id'].iat[i]!r}: "
                          f"event {txt!r} in column {ecol!r} must be 0 (censored) or 1 (event)",
                          "bad event")
            else:
                events[i] = ev
        out[ecol] = events
    if lcol:
        labels = df[lcol].map(_text)
        missing = np.flatnonzero(labels == "")
        for i in missing:
            probs.add(f"{_row_ref(tlabel, kind, int(i))}: patient "
                      f"{out['patient_id'].iat[int(i)]!r}: missing label in column {lcol!r}",
                      "missing label")
        values = sorted(set(labels[labels != ""]))
        if len(values) > 2:
            probs.add(f"{tlabel}:1: label column {lcol!r} must be binary; it has "
                      f"{len(values)} values: {', '.join(repr(v) for v in values[:8])}")
        elif len(values) == 2 and kind != "parquet":
            out[lcol] = _binary(df[lcol], values)
    for c in covs:
        n_missing = int(df[c].map(_text).eq("").sum())
        if n_missing:
            warnings.append(f"{tlabel}: covariate {c!r} is missing for {n_missing} patient(s)")
        if kind != "parquet":
            num = pd.to_numeric(df[c], errors="coerce")
            if num.notna().sum() == (df[c].map(_text) != "").sum():
                out[c] = num
    return out


def _as_event(v: Any, txt: str) -> int | None:
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    low = txt.lower()
    if low in ("1", "1.0", "true"):
        return 1
    if low in ("0", "0.0", "false"):
        return 0
    return None


def _binary(col: pd.Series, values: list[str]) -> pd.Series:
    """0/1 numbers stay numeric; other two-valued text stays text."""
    num = pd.to_numeric(col, errors="coerce")
    if set(num.dropna().unique().tolist()) <= {0, 1} and num.notna().all():
        return num.astype(int)
    return col.map(_text)


def _check_links(slides: pd.DataFrame, clinical: pd.DataFrame, skind, slabel, ckind, clabel,
                 probs: _Problems) -> None:
    known = set(clinical["patient_id"]) - {""}
    with_slide = set(slides["patient_id"]) - {""}
    for i, (sid, pid) in enumerate(zip(slides["slide_id"], slides["patient_id"])):
        if pid and pid not in known:
            probs.add(f"{_row_ref(slabel, skind, i)}: slide {sid!r} belongs to patient {pid!r}, "
                      f"who is not in the clinical table{_suggest(pid, sorted(known))}",
                      "slide without patient")
    for i, pid in enumerate(clinical["patient_id"]):
        if pid and pid not in with_slide:
            probs.add(f"{_row_ref(clabel, ckind, i)}: patient {pid!r} has no slide in the "
                      "slides table", "patient without slide")


def _apply_overrides(slides: pd.DataFrame, overrides: dict, probs: _Problems, at) -> None:
    ids = set(slides["slide_id"])
    for sid, value in overrides.items():
        sid_s = str(sid)
        if sid_s not in ids:
            probs.add(f"{at('mpp_overrides')}: mpp_overrides names unknown slide {sid_s!r}"
                      f"{_suggest(sid_s, sorted(ids))}")
            continue
        try:
            m = float(value)
        except (TypeError, ValueError):
            m = math.nan
        if isinstance(value, bool) or not math.isfinite(m) or m <= 0:
            probs.add(f"{at('mpp_overrides')}: mpp_overrides[{sid_s!r}] = {value!r} must be a "
                      "positive number of µm per pixel")
            continue
        slides.loc[slides["slide_id"] == sid_s, "mpp"] = m
