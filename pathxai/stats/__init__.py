"""Statistics: survival and diagnostic models, held-out SHAP, ranked candidate biomarkers.

Start with :func:`analyze` (feature table + clinical table -> :class:`BiomarkerAnalysis`).
The building blocks are usable on their own: :class:`FeaturePreprocessor` and
:class:`CoxNet` (scikit-learn estimators), :func:`univariable_cox`,
:func:`fit_survival_model`, :func:`fit_diagnostic_models`, :func:`summarize_shap`,
:func:`build_biomarker_table`, :func:`resolve_primary` / :func:`family_qvalues` (the
two-family multiplicity rule), the metrics and :func:`maxstat_cutpoint`.
"""

from pathxai.stats.analyze import BiomarkerAnalysis, analyze, load_table
from pathxai.stats.biomarkers import RANKING_RULE, TIER_RULES, build_biomarker_table, cluster_table
from pathxai.stats.coxnet import CoxNet, fit_cox_newton, fit_coxnet_path
from pathxai.stats.cutpoint import MaxstatResult, logrank_scores, maxstat_cutpoint
from pathxai.stats.diagnostic import fit_diagnostic_models, univariable_logistic
from pathxai.stats.explain import linear_shap, summarize_shap, tree_shap
from pathxai.stats.families import family_qvalues, resolve_primary
from pathxai.stats.metrics import cumulative_dynamic_auc, harrell_c, km_curve, uno_c
from pathxai.stats.preprocess import FeaturePreprocessor, spearman_clusters
from pathxai.stats.results import DiagnosticResult, SurvivalModelResult, UnivariableCoxResult
from pathxai.stats.survival import fit_survival_model
from pathxai.stats.univariable import bh_qvalues, univariable_cox

__all__ = [
    "analyze",
    "BiomarkerAnalysis",
    "load_table",
    "TIER_RULES",
    "RANKING_RULE",
    "build_biomarker_table",
    "cluster_table",
    "family_qvalues",
    "resolve_primary",
    "CoxNet",
    "fit_cox_newton",
    "fit_coxnet_path",
    "MaxstatResult",
    "logrank_scores",
    "maxstat_cutpoint",
    "fit_diagnostic_models",
    "univariable_logistic",
    "linear_shap",
    "summarize_shap",
    "tree_shap",
    "cumulative_dynamic_auc",
    "harrell_c",
    "km_curve",
    "uno_c",
    "FeaturePreprocessor",
    "spearman_clusters",
    "DiagnosticResult",
    "SurvivalModelResult",
    "UnivariableCoxResult",
    "fit_survival_model",
    "bh_qvalues",
    "univariable_cox",
]
