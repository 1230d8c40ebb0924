"""Label ontology and prompt parsing."""

from __future__ import annotations

import pandas as pd
import pytest

from pathxai.exceptions import UnknownPromptError
from pathxai.segment import list_labels, load_ontology, parse_prompt
from pathxai.segment.ontology import Ontology, normalize_text, slugify


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("tumour", "tumor"),
        ("Tumours", "tumor"),
        ("fat", "adipose tissue"),
        ("adipocytes", "adipose tissue"),
        ("TILs", "lymphocyte"),
        ("immune cells", "inflammatory cell"),
        ("dead tissue", "necrosis"),
        ("neoplastic cells", "neoplastic cell"),
        ("nuclei", "nucleus"),
        ("crypts", "gland"),
        ("haemorrhage", "blood"),
        ("lymph node metastases", "metastatic tumor"),
        ("DCIS", "carcinoma in situ"),
        ("glass", "background"),
        ("tumor cell nuclei", "neoplastic cell"),
        ("  Lymphocytes!! ", "lymphocyte"),
    ],
)
def test_synonyms(text, label):
    p = parse_prompt(text)
    assert p.label == label
    assert p.match == "exact"


def test_template_and_region():
    p = parse_prompt("tissue-level tumor in breast pathology")
    assert (p.label, p.structure, p.region) == ("tumor", "tissue", "breast")
    assert p.canonical == "tissue-level tumor in breast pathology"
    q = parse_prompt("cell-level inflammatory cell in unspecified pathology")
    assert q.region is None and q.canonical.endswith("in unspecified pathology")
    # label form [region]-[structure]-[object]
    r = parse_prompt("breast-tissue-tumor")
    assert (r.label, r.structure, r.region) == ("tumor", "tissue", "breast")
    assert r.label_path == "breast-tissue-tumor"
    assert parse_prompt("lymph node-tissue-metastatic tumor").region == "lymph node"
    # free-text organs
    assert parse_prompt("glands in the colon").region == "colon"
    assert parse_prompt("colorectal glands").region == "colon"
    assert parse_prompt("gastric tumour").region == "stomach"
    assert parse_prompt("fat in breast pathology").region == "breast"
    # a cell-level template for a tissue word means the cell
    assert parse_prompt("cell-level tumor in liver pathology").label == "neoplastic cell"


def test_tils_qualifier_and_slug():
    p = parse_prompt("tumour-infiltrating lymphocytes in breast")
    assert (p.label, p.structure, p.region, p.qualifier) == ("lymphocyte", "cell", "breast", "in tumor")
    assert p.slug == "lymphocyte__in__tumor"
    assert p.canonical == "cell-level lymphocyte in breast pathology"
    q = parse_prompt("lymphocytes in stroma")
    assert (q.label, q.qualifier) == ("lymphocyte", "in stroma")
    assert parse_prompt("adipose tissue").slug == "adipose_tissue"


def test_parent_prompt_means_union_of_children():
    onto = load_ontology()
    p = parse_prompt("inflammatory cells")
    assert p.label == "inflammatory cell"
    assert set(p.leaves) == {"lymphocyte", "plasma cell", "neutrophil", "eosinophil", "macrophage"}
    assert set(onto.children("inflammatory cell")) == set(p.leaves)
    assert parse_prompt("lymphocyte").leaves == ("lymphocyte",)
    # a concrete label with kinds below it still means itself
    assert parse_prompt("tumor").leaves == ("tumor",)
    assert "metastatic tumor" in onto.children("tumor")
    assert onto.ancestors("lymphocyte") == ("inflammatory cell", "cell")
    assert set(onto.ancestors("tumor epithelium")) == {"tumor", "epithelium"}
    assert onto.is_a("metastatic tumor", "tumor") and not onto.is_a("tumor", "metastatic tumor")
    cell_leaves = set(onto.leaves("cell"))
    assert {"lymphocyte", "neoplastic cell", "fibroblast", "dead cell"} <= cell_leaves
    assert "inflammatory cell" not in cell_leaves
    assert onto.describe("gland").startswith("a gland")


@pytest.mark.parametrize("text", ["banana", "neutrofil", "xyz in breast", "purple things"])
def test_unknown_prompt_raises_with_suggestions(text):
    with pytest.raises(UnknownPromptError) as info:
        parse_prompt(text)
    assert info.value.suggestions, "suggestions must not be empty"
    assert all(s in load_ontology().labels for s in info.value.suggestions)


def test_typo_suggestion_and_fuzzy_accept():
    with pytest.raises(UnknownPromptError) as info:
        parse_prompt("neutrofil")
    assert info.value.suggestions[0] == "neutrophil"
    p = parse_prompt("lymphocyts")
    assert p.label == "lymphocyte" and p.match == "fuzzy" and p.score < 1
    with pytest.raises(UnknownPromptError):
        parse_prompt("tumor in mars")  # unknown organ is an error, not dropped
    with pytest.raises(UnknownPromptError):
        parse_prompt("   ")


def test_every_index_category_parses_to_itself(shared_data):
    idx = pd.read_csv(shared_data / "index.csv", dtype=str, keep_default_na=False)
    for _, r in idx.drop_duplicates(["category", "structure", "region"]).iterrows():
        for text in (r.category, f"{r.structure}-level {r.category} in {r.region} pathology"):
            p = parse_prompt(text)
            assert (p.label, p.structure) == (r.category, r.structure), text
        p = parse_prompt(f"{r.structure}-level {r.category} in {r.region} pathology")
        assert p.region == (None if r.region == "unspecified" else r.region)


def test_every_synonym_round_trips_and_dataset_classes():
    onto = load_ontology()
    for lab in onto.labels.values():
        for s in (lab.name, *lab.synonyms):
            assert onto.parse(s).label == lab.name, s
    assert onto.map_dataset_class("pannuke", "Neoplastic") == "neoplastic cell"
    assert onto.map_dataset_class("consep", "dysplastic/malignant epithelial") == "neoplastic cell"
    assert onto.map_dataset_class("bcss", "fat") == "adipose tissue"
    assert onto.map_dataset_class("kather2016", "08_EMPTY") == "background"
    for name in ("glas", "kather2016", "bcss", "pannuke", "consep", "lizard", "monusac"):
        assert name in onto.dataset_classes
    assert onto.version


def test_list_labels_and_helpers():
    df = list_labels()
    assert {"label", "structure", "parents", "leaves", "description"} <= set(df.columns)
    assert df["label"].is_unique and (df["description"].str.len() > 10).all()
    assert set(list_labels("nuclei")["label"]) == {"nucleus"}
    with pytest.raises(ValueError):
        list_labels("organ")
    assert slugify("adipose tissue") == "adipose_tissue"
    assert normalize_text("Tumour-Infiltrating Lymphocytes") == "tumor infiltrating lymphocyte"
    p = parse_prompt("fat")
    assert parse_prompt(p) is p and hash(p) == hash(parse_prompt("fat"))


def test_inconsistent_ontology_is_rejected():
    bad = {"version": "x", "labels": {
        "a": {"structure": "tissue", "synonyms": ["thing"]},
        "b": {"structure": "tissue", "synonyms": ["thing"], "parents": ["missing"]},
        "c": {"structure": "organ"},
    }}
    with pytest.raises(ValueError) as info:
        Ontology(bad)
    msg = str(info.value)
    assert "thing" in msg and "missing" in msg and "organ" in msg
