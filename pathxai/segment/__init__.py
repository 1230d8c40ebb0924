"""Text-prompted segmentation: ontology, prompt parsing, predictors, evaluation.

Names are imported lazily (PEP 562) so ``import pathxai.segment`` does not pull torch:
only :class:`Segmentor` and the training/model modules need it.

Public API
----------
parse_prompt(text) -> ParsedPrompt
    Free text to a canonical label (synonyms, plurals, British spelling, templates).
list_labels(structure=None) -> DataFrame
    The vocabulary.
Ontology, load_ontology()
    The label hierarchy (children, ancestors, leaves, describe).
StainSegmentor
    Classical colour-deconvolution baseline with the predictor API.
Segmentor, build_segmentor, MODEL_REGISTRY, segment_slide, train
    The neural model family (PathSegmentor-style).
evaluate_index(index, predictor, ...) -> dict
    Dice / IoU / AJI with bootstrap CIs on an image-mask index.
paired_dice_table(a, b) -> DataFrame
    Paired per-image Dice difference of two evaluation results, with bootstrap CIs.
"""

from __future__ import annotations

from pathxai._lazy import lazy_exports

# public name -> "module:attribute"
_LAZY: dict[str, str] = {
    "parse_prompt": "pathxai.segment.ontology:parse_prompt",
    "ParsedPrompt": "pathxai.segment.ontology:ParsedPrompt",
    "list_labels": "pathxai.segment.ontology:list_labels",
    "Ontology": "pathxai.segment.ontology:Ontology",
    "load_ontology": "pathxai.segment.ontology:load_ontology",
    "PromptResult": "pathxai.segment.types:PromptResult",
    "StainSegmentor": "pathxai.segment.stain:StainSegmentor",
    "evaluate_index": "pathxai.segment.evaluate:evaluate_index",
    "paired_dice_table": "pathxai.segment.compare:paired_dice_table",
    "Segmentor": "pathxai.segment.predictor:Segmentor",
    "build_segmentor": "pathxai.segment.build:build_segmentor",
    "MODEL_REGISTRY": "pathxai.segment.build:MODEL_REGISTRY",
    "segment_slide": "pathxai.segment.slide:segment_slide",
    "train": "pathxai.segment.train:train",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports('pathxai.segment', _LAZY, globals())
