"""Label ontology and free-text prompt parsing.

The vocabulary lives in ``ontology.yaml`` next to this module (versioned; checkpoints
record the version). A label is a canonical object name (lower case, spaces) with a
PathSegmentor structure level (``tissue``, ``cell`` or ``nuclei``), is-a parents, a
one-line description, synonyms and the datasets that annotate it.

:func:`parse_prompt` turns free text into a :class:`ParsedPrompt`:

>>> p = parse_prompt("tumour-infiltrating lymphocytes in breast")
>>> p.label, p.structure, p.region, p.qualifier
('lymphocyte', 'cell', 'breast', 'in tumor')
>>> p.canonical
'cell-level lymphocyte in breast pathology'
>>> parse_prompt("inflammatory cells").leaves
('eosinophil', 'lymphocyte', 'macrophage', 'neutrophil', 'plasma cell')

Matching rules, in order:

1. The PathSegmentor template ``"{structure}-level {object} in {region} pathology"`` and the
   label form ``"{region}-{structure}-{object}"`` are split into their parts.
2. Text is normalised: Unicode NFKC, lower case, punctuation and ``-``/``_`` to spaces,
   British to American spelling (tumour, haemorrhage, oesophagus, ...), plurals to singular
   (nuclei, metastases, ...), filler words dropped (the, all, region, area, mask, ...).
3. An exact match of the normalised text against every label name and synonym.
4. Otherwise an organ is looked for (``"... in colon"``, ``"breast ..."``, ``"... colon pathology"``)
   and removed, and a spatial qualifier (``"lymphocytes in stroma"``) is split off.
5. Otherwise a fuzzy score (max of :class:`difflib.SequenceMatcher` ratio and token Jaccard)
   against every name; it is accepted only at ``>= FUZZY_ACCEPT`` with a clear winner, so
   typos are forgiven but nothing is silently guessed: anything else raises
   :class:`~pathxai.exceptions.UnknownPromptError` listing the closest labels.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from pathxai.exceptions import UnknownPromptError

__all__ = [
    "STRUCTURES",
    "FUZZY_ACCEPT",
    "Label",
    "Ontology",
    "ParsedPrompt",
    "load_ontology",
    "parse_prompt",
    "list_labels",
    "slugify",
    "normalize_text",
]

STRUCTURES: tuple[str, ...] = ("tissue", "cell", "nuclei")

#: minimum fuzzy score (0-1) for a non-exact match to be accepted
FUZZY_ACCEPT = 0.86
#: a fuzzy winner must beat the best *other* label by this margin
FUZZY_MARGIN = 0.03

_STRUCTURE_WORDS = {
    "tissue": "tissue",
    "cell": "cell",
    "cellular": "cell",
    "cells": "cell",
    "nuclei": "nuclei",
    "nucleus": "nuclei",
    "nuclear": "nuclei",
}
_STOPWORDS = frozenset(
    "the a an all any every of and or please segment segmentation show find highlight outline "
    "mask masks region regions area areas pathology histology histopathology image images slide "
    "slides h e wsi".split()
)
_QUALIFIER_WORDS = ("in", "within", "inside", "around", "near", "at")
_IRREGULAR_SINGULAR = {
    "nuclei": "nucleus",
    "metastases": "metastasis",
    "mitoses": "mitosis",
    "apoptoses": "apoptosis",
    "acini": "acinus",
    "lumina": "lumen",
    "testes": "testis",
    "adnexae": "adnexa",
    "stromata": "stroma",
    "foci": "focus",
}
_NO_SINGULAR_SUFFIXES = ("ss", "us", "is", "ys", "as", "os")
_BRITISH = (
    (re.compile(r"tumour"), "tumor"),
    (re.compile(r"\bhaem"), "hem"),
    (re.compile(r"aemia"), "emia"),
    (re.compile(r"\boe(soph|dem)"), r"e\1"),
    (re.compile(r"leuco"), "leuko"),
    (re.compile(r"isation"), "ization"),
    (re.compile(r"fibre"), "fiber"),
    (re.compile(r"colour"), "color"),
    (re.compile(r"\bfoet"), "fet"),
)


def _singular(token: str) -> str:
    if token in _IRREGULAR_SINGULAR:
        return _IRREGULAR_SINGULAR[token]
    if len(token) > 4 and token.endswith("ies"):
        return token[:-3] + "y"
    if len(token) > 3 and token.endswith("s") and not token.endswith(_NO_SINGULAR_SUFFIXES):
        return token[:-1]
    return token


def _tokens(text: str, *, drop_stopwords: bool = True) -> list[str]:
    text = unicodedata.normalize("NFKC", str(text)).lower()
    for pattern, repl in _BRITISH:
        text = pattern.sub(repl, text)
    text = re.sub(r"[^0-9a-z]+", " ", text)
    out = [_singular(t) for t in text.split()]
    if drop_stopwords:
        out = [t for t in out if t not in _STOPWORDS]
    return out


def normalize_text(text: str) -> str:
    """Normalise free text for matching (see the module docstring, rule 2).

    Parameters
    ----------
    text : str
        Any text.

    Returns
    -------
    str
        Lower-case, singular, American-spelled tokens joined by single spaces.
    """
    return " ".join(_tokens(text))


def slugify(name: str) -> str:
    """File- and feature-name form of a canonical name: spaces and ``-`` become ``_``."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


@dataclass(frozen=True)
class Label:
    """One canonical object of the ontology (see ``ontology.yaml`` for the fields)."""

    name: str
    structure: str
    parents: tuple[str, ...]
    group: bool
    description: str
    synonyms: tuple[str, ...]
    qualified: tuple[tuple[str, str], ...]
    datasets: tuple[str, ...]

    @property
    def slug(self) -> str:
        """File-name form of :attr:`name`."""
        return slugify(self.name)


@dataclass(frozen=True)
class ParsedPrompt:
    """A text prompt resolved to one canonical label.

    Attributes
    ----------
    text : str
        The prompt as given.
    label : str
        Canonical object, e.g. ``"lymphocyte"``.
    structure : str
        ``"tissue"``, ``"cell"`` or ``"nuclei"`` (the label's PathSegmentor level).
    region : str or None
        Canonical organ (``"breast"``), or None when the prompt names none.
    leaves : tuple of str
        Canonical leaf objects whose union the prompt means: the label itself, or for a
        group label (``"inflammatory cell"``) its leaf descendants, sorted.
    qualifier : str or None
        Spatial qualifier in canonical words, e.g. ``"in tumor"`` for TILs. Predictors may
        ignore it; it is kept so downstream features can restrict counts to a region.
    match : str
        ``"exact"`` (a name or synonym after normalisation) or ``"fuzzy"``.
    score : float
        Match score in [0, 1] (1 for exact matches).
    ontology_version : str
        Version of the ontology that resolved it.
    """

    text: str
    label: str
    structure: str
    region: str | None
    leaves: tuple[str, ...]
    qualifier: str | None = None
    match: str = "exact"
    score: float = 1.0
    ontology_version: str = ""

    @property
    def canonical(self) -> str:
        """PathSegmentor prompt: ``"{structure}-level {label} in {region} pathology"``."""
        return f"{self.structure}-level {self.label} in {self.region or 'unspecified'} pathology"

    @property
    def slug(self) -> str:
        """Output file stem: label slug, plus ``__in__<region slug>`` for a qualifier."""
        base = slugify(self.label)
        if self.qualifier:
            word, _, target = self.qualifier.partition(" ")
            base += f"__{word}__{slugify(target)}"
        return base

    @property
    def is_instance_level(self) -> bool:
        """True for cell- and nucleus-level prompts (answers carry instances)."""
        return self.structure in ("cell", "nuclei")

    @property
    def label_path(self) -> str:
        """PathSegmentor label ``"{region}-{structure}-{object}"``."""
        return f"{self.region or 'unspecified'}-{self.structure}-{self.label}"


class Ontology:
    """The label hierarchy, region vocabulary and prompt matcher.

    Parameters
    ----------
    data : dict
        The parsed ``ontology.yaml`` mapping (``version``, ``regions``, ``labels``, ...).
    source : str, optional
        Where it came from, for messages.

    Raises
    ------
    ValueError
        When the file is inconsistent (unknown parent, bad structure, a synonym claimed by
        two labels, a parent cycle).
    """

    def __init__(self, data: dict[str, Any], source: str = "<dict>"):
        self.source = source
        self.version = str(data.get("version", ""))
        problems: list[str] = []
        self.labels: dict[str, Label] = {}
        for name, spec in (data.get("labels") or {}).items():
            spec = spec or {}
            structure = spec.get("structure")
            if structure not in STRUCTURES:
                problems.append(f"label {name!r}: structure {structure!r} not in {STRUCTURES}")
            qualified = tuple((str(k), str(v)) for k, v in (spec.get("qualified") or {}).items())
            self.labels[name] = Label(
                name=name,
                structure=str(structure),
                parents=tuple(spec.get("parents") or ()),
                group=bool(spec.get("group", False)),
                description=str(spec.get("description", "")).strip(),
                synonyms=tuple(str(s) for s in spec.get("synonyms") or ()),
                qualified=qualified,
                datasets=tuple(str(s) for s in spec.get("datasets") or ()),
            )
        self.regions: dict[str, tuple[str, ...]] = {
            str(k): tuple(str(s) for s in (v or ())) for k, v in (data.get("regions") or {}).items()
        }
        self.dataset_classes: dict[str, dict[str, str]] = {
            str(k): {str(a): str(b) for a, b in (v or {}).items()}
            for k, v in (data.get("dataset_classes") or {}).items()
        }
        self.unmapped: dict[str, dict[str, str]] = dict(data.get("unmapped") or {})
        self._children: dict[str, list[str]] = {n: [] for n in self.labels}
        for lab in self.labels.values():
            for p in lab.parents:
                if p not in self.labels:
                    problems.append(f"label {lab.name!r}: unknown parent {p!r}")
                else:
                    self._children[p].append(lab.name)
        for lab in self.labels.values():
            if lab.group and not self._children[lab.name]:
                problems.append(f"label {lab.name!r} is a group but has no children")
        for ds, mapping in self.dataset_classes.items():
            for cls, target in mapping.items():
                if target not in self.labels:
                    problems.append(f"dataset_classes.{ds}.{cls}: unknown label {target!r}")
        # exact-match table: normalised key -> (label, qualifier)
        self._keys: dict[str, tuple[str, str | None]] = {}
        for lab in self.labels.values():
            names = [(lab.name, None), *((s, None) for s in lab.synonyms), *lab.qualified]
            for text, qual in names:
                key = normalize_text(text)
                if not key:
                    problems.append(f"label {lab.name!r}: synonym {text!r} is empty once normalised")
                    continue
                if qual is not None:
                    qual = self._canonical_qualifier(qual, problems)
                prev = self._keys.get(key)
                if prev is not None and prev != (lab.name, qual):
                    problems.append(
                        f"synonym {text!r} (normalised {key!r}) claimed by {prev[0]!r} and {lab.name!r}"
                    )
                self._keys[key] = (lab.name, qual)
        self._region_keys: dict[str, str] = {}
        for region, aliases in self.regions.items():
            for text in (region, *aliases):
                key = normalize_text(text)
                prev = self._region_keys.get(key)
                if prev is not None and prev != region:
                    problems.append(f"region alias {text!r} claimed by {prev!r} and {region!r}")
                self._region_keys[key] = region
        if not problems:
            for name in self.labels:  # cycle check
                try:
                    self.ancestors(name)
                except RecursionError:
                    problems.append(f"label {name!r} is in a parent cycle")
        if problems:
            raise ValueError(
                f"ontology {source} is inconsistent:\n" + "\n".join(f"  - {p}" for p in problems)
            )

    # ------------------------------------------------------------------ hierarchy
    def _check(self, label: str) -> Label:
        try:
            return self.labels[label]
        except KeyError:
            raise UnknownPromptError(label, self.suggest(label)) from None

    def __contains__(self, label: object) -> bool:
        return label in self.labels

    def __len__(self) -> int:
        return len(self.labels)

    def children(self, label: str) -> tuple[str, ...]:
        """Direct children (is-a) of ``label``, sorted."""
        self._check(label)
        return tuple(sorted(self._children[label]))

    def descendants(self, label: str) -> tuple[str, ...]:
        """All labels below ``label``, sorted."""
        self._check(label)
        out: set[str] = set()
        stack = list(self._children[label])
        while stack:
            c = stack.pop()
            if c not in out:
                out.add(c)
                stack.extend(self._children[c])
        return tuple(sorted(out))

    def ancestors(self, label: str) -> tuple[str, ...]:
        """All labels above ``label`` (nearest first, breadth-first, no duplicates)."""
        lab = self._check(label)
        out: list[str] = []
        frontier = list(lab.parents)
        depth = 0
        while frontier:
            depth += 1
            if depth > len(self.labels):
                raise RecursionError(f"parent cycle through {label!r}")
            nxt: list[str] = []
            for p in frontier:
                if p not in out:
                    out.append(p)
                    nxt.extend(self.labels[p].parents)
            frontier = nxt
        return tuple(out)

    def is_a(self, label: str, other: str) -> bool:
        """True when ``label`` is ``other`` or one of its descendants."""
        return label == other or other in self.ancestors(label)

    def leaves(self, label: str) -> tuple[str, ...]:
        """Canonical objects whose union a prompt for ``label`` means.

        A group label (``group: true``, e.g. ``inflammatory cell``) means the union of the
        leaves of its children; any other label means itself, even when it has more
        specific children (``tumor`` is annotated as such; ``metastatic tumor`` is a kind of it).
        """
        lab = self._check(label)
        if not lab.group:
            return (label,)
        out: set[str] = set()
        for c in self._children[label]:
            out.update(self.leaves(c))
        return tuple(sorted(out))

    def describe(self, label: str) -> str:
        """One-line description of ``label`` (text-encoder input)."""
        return self._check(label).description

    def structure(self, label: str) -> str:
        """PathSegmentor structure level of ``label``."""
        return self._check(label).structure

    def map_dataset_class(self, dataset: str, class_name: str) -> str:
        """Canonical label of a public dataset's class name (``dataset_classes`` table).

        Raises
        ------
        UnknownPromptError
            When the dataset or class is not in the table.
        """
        mapping = self.dataset_classes.get(dataset.lower())
        if mapping is None or class_name.lower() not in mapping:
            known = sorted(mapping) if mapping else sorted(self.dataset_classes)
            raise UnknownPromptError(f"{dataset}:{class_name}", known[:8])
        return mapping[class_name.lower()]

    def to_frame(self, structure: str | None = None):
        """The labels as a :class:`pandas.DataFrame` (one row per label)."""
        import pandas as pd

        if structure is not None and structure not in STRUCTURES:
            raise ValueError(f"structure {structure!r} is not one of {STRUCTURES}")
        rows = [
            {
                "label": lab.name,
                "structure": lab.structure,
                "parents": ", ".join(lab.parents),
                "group": lab.group,
                "leaves": ", ".join(self.leaves(lab.name)),
                "synonyms": ", ".join(lab.synonyms + tuple(k for k, _ in lab.qualified)),
                "description": lab.description,
                "datasets": ", ".join(lab.datasets),
                "slug": lab.slug,
            }
            for lab in self.labels.values()
            if structure is None or lab.structure == structure
        ]
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ matching
    def _canonical_qualifier(self, qualifier: str, problems: list[str] | None = None) -> str:
        word, _, target = qualifier.strip().partition(" ")
        key = normalize_text(target)
        hit = self._keys.get(key) if hasattr(self, "_keys") else None
        if hit is None:
            # targets of qualified synonyms are matched against names only at load time
            names = {normalize_text(n): n for n in self.labels}
            if key in names:
                return f"{word} {names[key]}"
            if problems is not None:
                problems.append(f"qualifier {qualifier!r}: unknown target {target!r}")
            return qualifier
        return f"{word} {hit[0]}"

    def _score(self, query: str, key: str) -> float:
        ratio = difflib.SequenceMatcher(None, query, key).ratio()
        qa, ka = set(query.split()), set(key.split())
        jaccard = len(qa & ka) / len(qa | ka) if qa | ka else 0.0
        return max(ratio, jaccard)

    def _ranked(self, query: str) -> list[tuple[float, str, str]]:
        """(score, label, key) for every key, best first."""
        scored = [(self._score(query, k), lab, k) for k, (lab, _) in self._keys.items()]
        scored.sort(key=lambda t: (-t[0], t[1]))
        return scored

    def suggest(self, text: str, n: int = 5) -> list[str]:
        """Up to ``n`` distinct canonical labels closest to ``text``, best first."""
        query = normalize_text(text)
        out: list[str] = []
        for _, lab, _ in self._ranked(query):
            if lab not in out:
                out.append(lab)
            if len(out) == n:
                break
        return out

    def match_region(self, text: str) -> str | None:
        """Canonical organ for ``text``; None for ``unspecified``/empty.

        Raises
        ------
        UnknownPromptError
            When ``text`` names no known organ (suggestions are organs).
        """
        key = normalize_text(text)
        if key in ("", "unspecified", "unknown", "none", "na", "not specified"):
            return None
        if key in self._region_keys:
            return self._region_keys[key]
        close = difflib.get_close_matches(key, list(self._region_keys), n=5, cutoff=0.5)
        raise UnknownPromptError(
            f"region {text!r}", list(dict.fromkeys(self._region_keys[c] for c in close))
        )

    def _exact(self, key: str) -> tuple[str, str | None] | None:
        if key in self._keys:
            return self._keys[key]
        toks = key.split()
        # "lymphocyte nuclei", "tumor nuclei" -> the cell; "fat tissue" -> adipose tissue
        if len(toks) > 1 and toks[-1] in ("nucleus", "tissue", "cell"):
            stem = " ".join(toks[:-1])
            for cand in (stem, stem + " cell") if toks[-1] == "nucleus" else (stem,):
                hit = self._keys.get(cand)
                if hit is not None and (toks[-1] != "nucleus" or self.labels[hit[0]].structure != "tissue"):
                    return hit
        return None

    def _resolve_object(self, key: str, prefer: str | None = None) -> tuple[str, str | None] | None:
        """Exact resolution of a normalised object phrase, with a spatial qualifier split off."""
        hit = self._exact(key)
        if hit is not None and prefer == "cell" and self.labels[hit[0]].structure == "tissue":
            cell_hit = self._exact(key + " cell")
            if cell_hit is not None:
                return cell_hit
        if hit is not None:
            return hit
        toks = key.split()
        for i, t in enumerate(toks):
            if t in _QUALIFIER_WORDS and 0 < i < len(toks) - 1:
                head = self._exact(" ".join(toks[:i]))
                tail = self._exact(" ".join(toks[i + 1 :]))
                if head is not None and tail is not None and head[1] is None:
                    return head[0], f"{t} {tail[0]}"
        return None

    def _split_region(self, toks: list[str]) -> list[tuple[str, list[str]]]:
        """Candidate (region, remaining tokens) splits, longest alias first."""
        out: list[tuple[str, list[str]]] = []
        aliases = sorted(self._region_keys, key=lambda k: -len(k.split()))
        for alias in aliases:
            at = alias.split()
            n = len(at)
            for i in range(len(toks) - n + 1):
                if toks[i : i + n] == at:
                    rest = toks[:i] + toks[i + n :]
                    if i > 0 and toks[i - 1] in ("in", "from", "within", "of"):
                        rest = toks[: i - 1] + toks[i + n :]
                    if rest:
                        out.append((self._region_keys[alias], rest))
        return out

    def parse(self, text: str | ParsedPrompt) -> ParsedPrompt:
        """Resolve a free-text prompt; see :func:`parse_prompt`."""
        if isinstance(text, ParsedPrompt):
            return text
        if not isinstance(text, str) or not text.strip():
            raise UnknownPromptError(str(text), self.suggest("tissue"))
        raw = text
        s = unicodedata.normalize("NFKC", text).strip().lower()
        s = re.sub(r"[\s.!?;:]+$", "", s)
        declared: str | None = None
        region_text: str | None = None
        m = re.match(
            r"^(tissue|cell|cellular|cells|nuclei|nucleus|nuclear)[\s_-]*level\s+(.+?)(?:\s+in\s+(.+?))?(?:\s+pathology)?$",
            s,
        )
        if m:
            declared = _STRUCTURE_WORDS[m.group(1)]
            s = m.group(2) if m.group(3) is None else m.group(2)
            region_text = m.group(3)
        else:
            m = re.match(r"^([a-z &]+?)\s*-\s*(tissue|cell|nuclei)\s*-\s*(.+)$", s)
            if m:
                try:
                    region_text_try = m.group(1)
                    self.match_region(region_text_try)
                except UnknownPromptError:
                    pass
                else:
                    declared, s, region_text = m.group(2), m.group(3), region_text_try
        region = self.match_region(region_text) if region_text is not None else None
        key = normalize_text(s)
        if not key:
            raise UnknownPromptError(raw, self.suggest(raw))
        hit = self._resolve_object(key, declared)
        if hit is None and region is None:
            for reg, rest in self._split_region(key.split()):
                hit = self._resolve_object(" ".join(rest), declared)
                if hit is not None:
                    region, key = reg, " ".join(rest)
                    break
        if hit is not None and region is None:
            # "colon glands", "lymph node metastasis": a synonym that names an organ too
            for reg, rest in self._split_region(key.split()):
                if reg not in hit[0] and self._resolve_object(" ".join(rest), declared) == hit:
                    region = reg
                    break
        if hit is not None:
            return self._make(raw, hit[0], hit[1], region, "exact", 1.0)
        # fuzzy: only a clear, close winner is accepted
        query = key
        if region is None:
            splits = self._split_region(key.split())
            if splits:
                region, query = splits[0][0], " ".join(splits[0][1])
        ranked = self._ranked(query)
        best_score, best_label, best_key = ranked[0]
        runner_up = next((s_ for s_, lab, _ in ranked if lab != best_label), 0.0)
        if best_score >= FUZZY_ACCEPT and best_score - runner_up >= FUZZY_MARGIN:
            qual = self._keys[best_key][1]
            return self._make(raw, best_label, qual, region, "fuzzy", round(best_score, 4))
        raise UnknownPromptError(raw, self.suggest(query))

    def _make(self, raw, label, qualifier, region, match, score) -> ParsedPrompt:
        lab = self.labels[label]
        return ParsedPrompt(
            text=raw,
            label=label,
            structure=lab.structure,
            region=region,
            leaves=self.leaves(label),
            qualifier=qualifier,
            match=match,
            score=score,
            ontology_version=self.version,
        )

    def parse_many(self, prompts: Iterable[str | ParsedPrompt]) -> list[ParsedPrompt]:
        """:meth:`parse` for each prompt (a single string is one prompt)."""
        if isinstance(prompts, (str, ParsedPrompt)):
            prompts = [prompts]
        return [self.parse(p) for p in prompts]


_DEFAULT_PATH = "ontology.yaml"


@lru_cache(maxsize=8)
def _load_cached(path: str | None) -> Ontology:
    if path is None:
        ref = resources.files("pathxai.segment").joinpath(_DEFAULT_PATH)
        text = ref.read_text(encoding="utf-8")
        source = str(ref)
    else:
        text = Path(path).read_text(encoding="utf-8")
        source = path
    return Ontology(yaml.safe_load(text), source=source)


def load_ontology(path: str | Path | None = None) -> Ontology:
    """Load (and cache) an ontology; the packaged ``ontology.yaml`` by default.

    Parameters
    ----------
    path : str or Path, optional
        A YAML file in the format of the packaged one.

    Returns
    -------
    Ontology
    """
    return _load_cached(None if path is None else str(Path(path).resolve()))


def parse_prompt(text: str | ParsedPrompt, *, ontology: Ontology | None = None) -> ParsedPrompt:
    """Turn free text into a canonical label (see the module docstring for the rules).

    Parameters
    ----------
    text : str or ParsedPrompt
        E.g. ``"tumour-infiltrating lymphocytes in breast"``,
        ``"tissue-level gland in colon pathology"``, ``"breast-tissue-tumor"``, ``"fat"``.
        A ParsedPrompt is returned unchanged.
    ontology : Ontology, optional
        Defaults to the packaged one.

    Returns
    -------
    ParsedPrompt

    Raises
    ------
    UnknownPromptError
        When nothing matches well enough; ``.suggestions`` holds the closest labels.
    """
    return (ontology or load_ontology()).parse(text)


def list_labels(structure: str | None = None):
    """The vocabulary as a DataFrame (label, structure, parents, group, leaves, synonyms, ...).

    Parameters
    ----------
    structure : {"tissue", "cell", "nuclei"}, optional
        Keep only labels of this level.
    """
    return load_ontology().to_frame(structure)
