"""Pre-specified primary features: two-family BH, the family column, the ordering and
cluster ranking rules, unknown names, the panel and ``pathxai analyze --primary``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from stats_testdata import simulate_cohort
from statsmodels.stats.multitest import multipletests

from pathxai.cli import main as cli_main
from pathxai.exceptions import StatsInputError
from pathxai.features.registry import ESTABLISHED_PANEL, established_panel_patterns
from pathxai.stats import analyze, build_biomarker_table
from pathxai.stats.biomarkers import cluster_table
from pathxai.stats.families import family_qvalues, parse_primary_option, resolve_primary

FAST = {"n_bootstrap": 20, "inner_folds": 3, "outer_folds": 3, "figures": False}
PRIMARY = ["prot", "harm", "noise1*"]


def _tables(n=150, p_noise=12, seed=3):
    X, t, e, _, y = simulate_cohort(n=n, p_noise=p_noise, seed=seed)
    ids = [f"P{i:03d}" for i in range(n)]
    return X.assign(pid=ids), pd.DataFrame({"pid": ids, "t": t, "e": e, "y": y})


@pytest.fixture(scope="module")
def res():
    feats, clin = _tables()
    return analyze(feats, clin, id_col="pid", time_col="t", event_col="e", label_col="y",
                   seed=0, primary_features=PRIMARY, **FAST)


def _bh(p):
    p = np.asarray(p, float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    q[ok] = multipletests(p[ok], method="fdr_bh")[1]
    return q


def test_family_column_and_membership(res):
    expected = {"prot", "harm", "noise1", "noise10", "noise11"}
    for table in (res.biomarkers, res.univariable.summary, res.diagnostic["univariable_logistic"]):
        assert set(table.loc[table["family"] == "primary", "feature"]) == expected
        assert set(table["family"]) == {"primary", "exploratory"}
    assert set(res.params["primary_family"]) == expected
    assert res.params["primary_patterns"] == PRIMARY
    assert "within each family" in res.params["multiple_testing"]
    assert "primary" in res.params["tier_rules"] and "redundant_with" in res.params["ranking_rule"]
    assert "family" in res.clusters.columns


def test_q_values_are_bh_within_each_family(res):
    b = res.biomarkers
    for pcol, qcol in (("p", "q"), ("p_label", "q_label")):
        for fam in ("primary", "exploratory"):
            sub = b[b["family"] == fam]
            np.testing.assert_allclose(sub[qcol].to_numpy(float), _bh(sub[pcol]), rtol=1e-12,
                                       equal_nan=True)
        # the split matters: some q differs from BH across all features
        assert not np.allclose(b[qcol].to_numpy(float), _bh(b[pcol]), equal_nan=True)
    u = res.univariable.summary
    np.testing.assert_allclose(u["q"], family_qvalues(u["p"], u["family"]), equal_nan=True)


def test_table_order_follows_the_ranking_rule(res):
    b = res.biomarkers
    assert list(b["rank"]) == list(range(1, len(b) + 1))
    leads = b[b["redundant_with"] == ""]
    copies = b[b["redundant_with"] != ""]
    assert len(leads) + len(copies) == len(b)
    assert b.index[b["redundant_with"] != ""].min() > b.index[b["redundant_with"] == ""].max()
    assert list(leads["cluster_rank"]) == list(range(1, len(leads) + 1))
    assert leads["tier"].is_monotonic_increasing
    for _, g in leads.groupby("tier"):
        fam = (g["family"] == "exploratory").astype(int)
        assert fam.is_monotonic_increasing  # primary before exploratory within a tier
    # every copy names the lead of its own cluster and shares its cluster_rank
    lead_of = dict(zip(leads["cluster"], leads["feature"]))
    rank_of = dict(zip(leads["feature"], leads["cluster_rank"]))
    for _, r in copies.iterrows():
        assert r["redundant_with"] == lead_of[r["cluster"]]
        assert r["cluster_rank"] == rank_of[r["redundant_with"]]
    # harm and its near-copy share a cluster: exactly one of them leads it
    harm = b.set_index("feature").loc[["harm", "harm_copy0"]]
    assert harm["cluster"].nunique() == 1 and (harm["redundant_with"] == "").sum() == 1


def _uni(features, p, hr=1.5):
    n = len(features)
    return pd.DataFrame({"feature": features, "n": 100, "n_events": 60, "hr": hr,
                         "hr_ci_low": 1.0, "hr_ci_high": 3.0, "p": p,
                         "q": p, "concordance": 0.6, "ph_p": 0.5, "ph_ok": [1.0] * n,
                         "message": ""})


def _shap(features, freq, consistency=1.0):
    return pd.DataFrame({"feature": features, "shap_mean_abs": freq, "shap_ci_low": 0.0,
                         "shap_ci_high": 1.0, "shap_rank": np.arange(1, len(features) + 1),
                         "shap_top_k_frequency": freq, "selection_frequency": freq,
                         "direction": 1, "direction_consistency": consistency})


def test_primary_before_exploratory_only_within_a_tier():
    feats = ["expl_strong", "expl_q", "prim_q", "prim_none", "expl_none"]
    # expl_strong: tier 1; expl_q / prim_q: tier 3 (q only; expl_q has the smaller q and
    # more SHAP stability); prim_none / expl_none: tier 4
    uni = _uni(feats, [1e-6, 1e-4, 0.01, 0.5, 0.4])
    shap_s = _shap(feats, [0.9, 0.3, 0.1, 0.0, 0.2])
    fam = {"prim_q": "primary", "prim_none": "primary"}
    t = build_biomarker_table(uni, shap_s, clusters={f: f for f in feats},
                              representatives={f: f for f in feats}, families=fam)
    assert list(t["feature"]) == ["expl_strong", "prim_q", "expl_q", "prim_none", "expl_none"]
    assert list(t["tier"]) == [1, 3, 3, 4, 4]
    assert list(t["family"]) == ["exploratory", "primary", "exploratory", "primary", "exploratory"]
    with pytest.raises(StatsInputError, match="confirmatory"):
        build_biomarker_table(uni, shap_s, clusters={f: f for f in feats},
                              representatives={f: f for f in feats},
                              families={"prim_q": "confirmatory"})


def test_correlated_copies_do_not_push_distinct_markers_down():
    feats = ["a1", "a2", "a3", "b", "c", "d"]
    # cluster A: a1 tier 1, a2 / a3 tier 2 (q and cluster-stable, not feature-stable);
    # b, c: distinct tier-3 markers; d: no cluster ('-', dropped before clustering), tier 4
    uni = _uni(feats, [1e-6, 1e-5, 1e-5, 1e-3, 1e-2, 0.5])
    shap_s = _shap(feats, [0.9, 0.1, 0.05, 0.2, 0.1, 0.0])
    clusters = {"a1": "cA", "a2": "cA", "a3": "cA", "b": "cB", "c": "cC", "d": "-"}
    shap_cl = pd.DataFrame({"cluster": ["cA", "cB", "cC"], "shap_top_k_frequency": [0.9, 0.2, 0.1]})
    t = build_biomarker_table(uni, shap_s, clusters=clusters,
                              representatives={"cA": "a1", "cB": "b", "cC": "c"},
                              shap_clusters=shap_cl)
    assert dict(zip(t["feature"], t["tier"])) == {"a1": 1, "a2": 2, "a3": 2, "b": 3, "c": 3,
                                                  "d": 4}
    # without the cluster rule a2 and a3 (tier 2) would sit above b and c (tier 3)
    assert list(t["feature"]) == ["a1", "b", "c", "d", "a2", "a3"]
    assert list(t["cluster_rank"]) == [1, 2, 3, 4, 1, 1]
    assert list(t["redundant_with"]) == ["", "", "", "", "a1", "a1"]
    assert list(t["n_cluster_members"]) == [3, 1, 1, 1, 3, 3]
    ct = cluster_table(t, shap_cl, {"cA": "a1"})
    assert list(ct["lead_feature"]) == ["a1", "b", "c", "d"]
    assert list(ct["n_members"]) == [3, 1, 1, 1]
    assert ct.loc[0, "members"] == "a1;a2;a3"
    assert ct.loc[0, "representative"] == "a1"


def test_a_primary_member_leads_its_cluster_on_equal_evidence():
    feats = ["x_expl", "x_prim"]
    uni = _uni(feats, [1e-3, 1e-3])
    shap_s = _shap(feats, [0.1, 0.1])
    t = build_biomarker_table(uni, shap_s, clusters={"x_expl": "c1", "x_prim": "c1"},
                              representatives={"c1": "x_expl"}, families={"x_prim": "primary"})
    assert list(t["feature"]) == ["x_prim", "x_expl"]
    assert list(t["redundant_with"]) == ["", "x_prim"]


def test_unknown_primary_names_raise_listing_all_of_them():
    feats, clin = _tables(n=60, p_noise=3)
    with pytest.raises(StatsInputError) as err:
        analyze(feats, clin, id_col="pid", time_col="t", event_col="e",
                primary_features=["prot", "harmm", "zzz_*"], **FAST)
    msg = str(err.value)
    assert "2 name(s)/pattern(s)" in msg and "'harmm'" in msg and "'zzz_*'" in msg
    assert "did you mean 'harm'" in msg and "'prot'" not in msg  # 'prot' exists: not listed
    with pytest.raises(StatsInputError, match="empty"):
        resolve_primary([], ["a"])


def test_established_panel_unmatched_patterns_are_notes_not_errors():
    cols = ["area_fraction__necrosis", "ratio__tumor__to__stroma", "count__lymphocyte", "junk"]
    fam = resolve_primary("established", cols)
    assert fam.features == ["area_fraction__necrosis", "ratio__tumor__to__stroma"]
    unmatched = [p for p in established_panel_patterns()
                 if p not in ("area_fraction__necrosis", "ratio__tumor__to__stroma")]
    assert len(fam.notes) == len(unmatched)
    assert all(any(repr(p) in n for n in fam.notes) for p in unmatched)
    # mixed: the panel plus a user name; the user name must exist
    fam2 = resolve_primary(["established", "junk"], cols)
    assert fam2.features == ["area_fraction__necrosis", "ratio__tumor__to__stroma", "junk"]
    with pytest.raises(StatsInputError, match="'nope'"):
        resolve_primary(["established", "nope"], cols)
    # a name present in the table but excluded before testing is a note
    fam3 = resolve_primary(["junk", "text_col"], ["junk"], table_columns=["junk", "text_col"])
    assert fam3.features == ["junk"] and "excluded" in fam3.notes[0]


def test_panel_entries_are_documented_and_generic():
    assert 10 <= len(established_panel_patterns()) <= 25
    for e in ESTABLISHED_PANEL:
        assert e.patterns and e.rationale.strip() and any(ch.isdigit() for ch in e.references)
    from pathxai.features.registry import match_feature

    for p in established_panel_patterns():  # every pattern is an instance of a declared feature
        assert match_feature(p) is not None, p


def test_parse_primary_option():
    assert parse_primary_option(None) is None
    assert parse_primary_option("none") is None
    assert parse_primary_option("established") == "established"
    assert parse_primary_option("a, b*,established") == ["a", "b*", "established"]
    with pytest.raises(StatsInputError):
        parse_primary_option("none,a")


def test_cli_primary_reaches_analyze(tmp_path, capsys):
    feats, clin = _tables(n=100, p_noise=4, seed=5)
    feats.to_csv(tmp_path / "f.csv", index=False)
    clin.to_csv(tmp_path / "c.csv", index=False)
    base = ["analyze", "--features", str(tmp_path / "f.csv"), "--clinical", str(tmp_path / "c.csv"),
            "--id", "pid", "--time", "t", "--event", "e", "--n-bootstrap", "10"]
    rc = cli_main([*base, "--primary", "prot,noise[01]", "--out", str(tmp_path / "out")])
    assert rc == 0
    b = pd.read_csv(tmp_path / "out" / "biomarkers.csv")
    assert set(b.loc[b["family"] == "primary", "feature"]) == {"prot", "noise0", "noise1"}
    params = json.loads((tmp_path / "out" / "analysis.json").read_text())
    assert params["primary_features"] == ["prot", "noise[01]"]
    assert "primary family: 3" in capsys.readouterr().out
    rc = cli_main([*base, "--primary", "prot,nosie0", "--out", str(tmp_path / "out2")])
    assert rc == 2 and "'nosie0'" in capsys.readouterr().err
    rc = cli_main([*base, "--out", str(tmp_path / "out3")])  # default: no primary family
    assert rc == 0
    assert set(pd.read_csv(tmp_path / "out3" / "biomarkers.csv")["family"]) == {"exploratory"}
