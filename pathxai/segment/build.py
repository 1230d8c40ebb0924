"""Model registry and checkpoints (safetensors weights + a JSON config; never pickle).

A checkpoint is a folder::

    <dir>/model.safetensors   the weights (``torch.load`` is never used)
    <dir>/config.json         architecture, µm/px, tile size, normalisation, ontology version,
                              vocabulary, label texts, training data, licence, metrics

``load_checkpoint("default")`` reads the one shipped in ``pathxai/segment/weights/default``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from pathxai.exceptions import CheckpointError

from .modeling import ModelConfig, PromptSegmentationModel, Vocabulary

__all__ = [
    "MODEL_REGISTRY",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "build_tiny",
    "build_small",
    "build_base",
    "grow_checkpoint",
    "build_segmentor",
    "average_checkpoints",
    "default_config",
    "ontology_vocabulary",
    "label_segments",
    "encode_labels",
    "save_checkpoint",
    "load_checkpoint",
    "resolve_checkpoint_dir",
    "file_sha256",
    "export_checkpoint",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "pathxai-segmentor"
FORMAT_VERSION = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle")


def build_tiny(vocab_size: int) -> ModelConfig:
    """≈ 1.6 M parameters: trainable on 2 CPU cores (channels 16–128, width 96)."""
    return ModelConfig(vocab_size=vocab_size)


def build_small(vocab_size: int) -> ModelConfig:
    """≈ 7 M parameters, for a GPU (channels 32–256, two blocks per level, width 192)."""
    return ModelConfig(vocab_size=vocab_size, enc_channels=(32, 64, 128, 192, 256),
                       enc_depths=(1, 2, 2, 2, 1), dec_dims=(48, 64, 96, 128, 192),
                       embed_dim=48, dim=192, heads=6, text_depth=3, fusion_depth=3,
                       num_queries=12)


def build_base(vocab_size: int) -> ModelConfig:
    """≈ 25 M parameters, for a GPU (channels 48–384, width 256)."""
    return ModelConfig(vocab_size=vocab_size, enc_channels=(48, 96, 192, 288, 384),
                       enc_depths=(2, 2, 3, 3, 2), dec_dims=(64, 96, 128, 192, 256),
                       embed_dim=64, dim=256, heads=8, text_depth=4, fusion_depth=4,
                       num_queries=16)


#: architecture name -> builder ``(vocab_size) -> ModelConfig``
MODEL_REGISTRY: dict[str, Callable[[int], ModelConfig]] = {
    "tiny": build_tiny,
    "small": build_small,
    "base": build_base,
}


# --------------------------------------------------------------------------- prompt text
def ontology_vocabulary(ontology=None) -> Vocabulary:
    """Every word of the ontology's labels, synonyms, descriptions, structures and regions."""
    from .ontology import load_ontology

    onto = ontology or load_ontology()
    texts: list[str] = ["level", "unspecified", "pathology", "in", "tissue", "cell", "nuclei"]
    for name, lab in onto.labels.items():
        texts += [name, lab.description, *lab.synonyms]
    texts += list(getattr(onto, "regions", {}) or {})
    return Vocabulary.from_texts(texts)


def label_segments(label: str, structure: str, region: str | None, description: str
                   ) -> list[str]:
    """The text segments the text encoder reads for one label.

    ``["{structure} level {label}", region or "unspecified", description]``, i.e. the
    PathSegmentor template's parts plus the ontology's one-line description.
    """
    return [f"{structure} level {label}", region or "unspecified", description]


def encode_labels(vocab: Vocabulary, items: list[list[str]], max_len: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Segments of ``P`` prompts → ``ids (P, T)`` long and ``pad (P, T)`` bool (True = pad)."""
    seqs = [vocab.encode(s, max_len) for s in items]
    t = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), t, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
    return ids, ids == 0


# --------------------------------------------------------------------------- configs
def default_config(name: str, *, mpp: float = 0.5, tile_size: int = 256) -> dict:
    """A fresh checkpoint config for architecture ``name`` with the packaged ontology.

    Raises
    ------
    CheckpointError
        For an unknown architecture name (lists the known ones).
    """
    if name not in MODEL_REGISTRY:
        raise CheckpointError(
            f"unknown architecture {name!r}; choose one of {sorted(MODEL_REGISTRY)}"
        )
    from .ontology import load_ontology

    onto = load_ontology()
    vocab = ontology_vocabulary(onto)
    model_cfg = MODEL_REGISTRY[name](len(vocab))
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": name,
        "model": model_cfg.to_dict(),
        "mpp": float(mpp),
        "tile_size": int(tile_size),
        "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                          "input": "RGB uint8 / 255"},
        "ontology_version": onto.version,
        "vocabulary": vocab.words,
        "label_texts": {n: {"structure": lab.structure, "description": lab.description}
                        for n, lab in onto.labels.items()},
        "trained_labels": [],
        "instance_labels": [],
        "presence_threshold": 0.5,
        "mask_threshold": 0.5,
        "training": {},
        "license": "",
        "metrics": {},
    }


def build_segmentor(name: str = "tiny", checkpoint: str | Path | None = None
                    ) -> tuple[PromptSegmentationModel, dict]:
    """Build a model of architecture ``name``, or load ``checkpoint``.

    Parameters
    ----------
    name : {"tiny", "small", "base"}
        Architecture (ignored in favour of the checkpoint's own when ``checkpoint`` is given,
        but a mismatch raises).
    checkpoint : str or Path, optional
        A checkpoint folder or a registered name (``"default"``).

    Returns
    -------
    model : PromptSegmentationModel
        In eval mode when loaded from a checkpoint.
    config : dict
        The checkpoint config (see :func:`default_config`).
    """
    if checkpoint is not None:
        model, cfg = load_checkpoint(checkpoint)
        if name and cfg.get("architecture") != name:
            raise CheckpointError(
                f"checkpoint {str(checkpoint)!r} is architecture {cfg.get('architecture')!r}, "
                f"not {name!r}; pass name={cfg.get('architecture')!r}"
            )
        return model, cfg
    cfg = default_config(name)
    return PromptSegmentationModel(ModelConfig.from_dict(cfg["model"])), cfg


# --------------------------------------------------------------------------- save / load
def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(model: PromptSegmentationModel, config: dict, directory: str | Path
                    ) -> Path:
    """Write ``model.safetensors`` + ``config.json`` into ``directory`` (created).

    The config gains ``weights_sha256`` and ``n_parameters``; tensors are stored contiguous
    and exactly (no dtype change).

    Returns
    -------
    Path
        The folder.
    """
    cfg = dict(config)
    cfg["model"] = model.cfg.to_dict()
    return write_checkpoint_files(model, cfg, directory,
                                  metadata={"format": "pt", "pathxai": FORMAT})


def write_checkpoint_files(model: torch.nn.Module, config: dict, directory: str | Path, *,
                           metadata: dict[str, str]) -> Path:
    """Atomically write ``model.safetensors`` (contiguous CPU tensors, exact dtypes, with
    ``metadata``) and ``config.json`` (``config`` plus ``weights_sha256`` and
    ``n_parameters``) into ``directory`` (created); returns the folder."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = d / (WEIGHTS_NAME + ".tmp")
    save_file(state, str(tmp), metadata=metadata)
    tmp.replace(d / WEIGHTS_NAME)
    cfg = dict(config)
    cfg["weights_sha256"] = file_sha256(d / WEIGHTS_NAME)
    cfg["n_parameters"] = int(sum(p.numel() for p in model.parameters()))
    tmpc = d / (CONFIG_NAME + ".tmp")
    tmpc.write_text(json.dumps(cfg, indent=1, sort_keys=False) + "\n")
    tmpc.replace(d / CONFIG_NAME)
    return d


def resolve_checkpoint_dir(name_or_path: str | Path) -> Path:
    """A checkpoint folder from a path or a packaged name (``"default"`` → weights/default).

    Raises
    ------
    CheckpointError
        When it does not exist, or is a pickle file (``.pt``, ``.pth``, ``.bin``, ...).
    """
    p = Path(name_or_path)
    if p.suffix.lower() in _PICKLE_SUFFIXES:
        raise CheckpointError(
            f"refusing {str(p)!r}: pickle-based checkpoints can run arbitrary code; "
            f"convert it to a folder with {WEIGHTS_NAME} + {CONFIG_NAME}"
        )
    if p.is_file() and p.name == WEIGHTS_NAME:
        p = p.parent
    if p.is_dir():
        return p
    if isinstance(name_or_path, str) and "/" not in name_or_path and "\\" not in name_or_path:
        packaged = Path(str(resources.files("pathxai.segment").joinpath("weights", name_or_path)))
        if packaged.is_dir():
            return packaged
        known = sorted(x.name for x in packaged.parent.iterdir() if x.is_dir()) \
            if packaged.parent.is_dir() else []
        raise CheckpointError(
            f"no checkpoint named {name_or_path!r}; packaged checkpoints: {known}; "
            "or pass a folder holding model.safetensors + config.json"
        )
    raise CheckpointError(f"checkpoint folder {str(p)!r} does not exist")


def load_checkpoint(name_or_path: str | Path, *, map_location: str | torch.device = "cpu"
                    ) -> tuple[PromptSegmentationModel, dict[str, Any]]:
    """Load a checkpoint folder (or packaged name) into a model in eval mode.

    Raises
    ------
    CheckpointError
        Missing files, a pickle file in place of safetensors, an unknown format, or
        weights that do not match the architecture exactly (names the keys).
    """
    d = resolve_checkpoint_dir(name_or_path)
    wpath, cpath = d / WEIGHTS_NAME, d / CONFIG_NAME
    if not wpath.is_file():
        pickles = sorted(x.name for x in d.iterdir() if x.suffix.lower() in _PICKLE_SUFFIXES)
        why = (f"it holds pickle file(s) {pickles}, which pathxai refuses to load"
               if pickles else "it is missing")
        raise CheckpointError(f"{str(wpath)!r}: {why}; a checkpoint needs {WEIGHTS_NAME}")
    if not cpath.is_file():
        raise CheckpointError(f"{str(cpath)!r} is missing; a checkpoint needs {CONFIG_NAME}")
    try:
        cfg = json.loads(cpath.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{str(cpath)!r} is not valid JSON: {e}") from e
    if cfg.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(cpath)!r} has format {cfg.get('format')!r}, expected {FORMAT!r}"
        )
    try:
        model = PromptSegmentationModel(ModelConfig.from_dict(cfg["model"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{str(cpath)!r}: bad 'model' architecture entry ({e})") from e
    try:
        state = load_file(str(wpath), device=str(map_location))
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{str(wpath)!r} is not a readable safetensors file: {e}") from e
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    bad = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or extra or bad:
        raise CheckpointError(
            f"{str(wpath)!r} does not match architecture {cfg.get('architecture')!r}: "
            f"missing {missing[:5]}, unexpected {extra[:5]}, shape mismatch {bad[:5]}"
        )
    model.load_state_dict(state, strict=True)
    model.eval()
    return model, cfg


def export_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Copy a run's checkpoint (``model.safetensors`` + ``config.json`` only, no optimizer
    state) into ``dst`` and check that it loads.

    Returns
    -------
    Path
        ``dst``.
    """
    import shutil

    s, d = resolve_checkpoint_dir(src), Path(dst)
    d.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        shutil.copyfile(s / name, d / name)
        (d / name).chmod(0o644)
    load_checkpoint(d)
    return d


def average_checkpoints(sources: list[str | Path], dst: str | Path, *,
                        weights: list[float] | None = None) -> Path:
    """Write the weighted mean of several checkpoints' weights (a "model soup").

    Fine-tunes that start from the same weights can be averaged parameter by parameter
    (Wortsman et al. 2022, "Model soups"): the mean keeps much of what each fine-tune gained
    and less of what each one lost. Floating-point tensors (weights and normalisation
    statistics) are averaged; integer buffers (batch counters) are taken from the first
    source. The config is the first source's, with ``training.average_of`` listing each
    source, its weights' SHA-256 and its weight, and no ``metrics`` (the sources' training-time
    validation did not score the mean).

    Parameters
    ----------
    sources : list of str or Path
        Checkpoint folders (or packaged names) of one architecture, model config and
        vocabulary.
    dst : str or Path
        Output folder (``model.safetensors`` + ``config.json``, written atomically).
    weights : list of float, optional
        Non-negative weights, one per source (normalised to sum 1); default equal.

    Returns
    -------
    Path
        ``dst``.

    Raises
    ------
    CheckpointError
        Fewer than two sources, bad weights, or sources that differ in architecture, model
        config, vocabulary or tensor names and shapes.
    """
    if len(sources) < 2:
        raise CheckpointError(f"average_checkpoints needs at least two checkpoints, got "
                              f"{len(sources)}")
    w = [1.0] * len(sources) if weights is None else [float(x) for x in weights]
    if len(w) != len(sources) or not all(math.isfinite(x) and x >= 0 for x in w) \
            or sum(w) <= 0:
        raise CheckpointError(f"weights={weights!r} must be one finite number >= 0 per "
                              f"checkpoint ({len(sources)}), not all zero")
    total = sum(w)
    loaded = [load_checkpoint(s) for s in sources]
    model, cfg = loaded[0]
    for src, (_, c) in zip(sources[1:], loaded[1:]):
        for key in ("architecture", "model", "vocabulary", "mpp"):
            if c.get(key) != cfg.get(key):
                raise CheckpointError(f"cannot average {src!r} with {sources[0]!r}: their "
                                      f"{key!r} differ; average fine-tunes of one checkpoint")
    states = [m.state_dict() for m, _ in loaded]
    mean = {}
    for k, v in states[0].items():
        for src, st in zip(sources[1:], states[1:]):
            if k not in st or st[k].shape != v.shape:
                raise CheckpointError(f"cannot average {src!r} with {sources[0]!r}: tensor "
                                      f"{k!r} differs")
        if v.is_floating_point():
            acc = torch.zeros_like(v, dtype=torch.float64)
            for st, x in zip(states, w):
                acc += st[k].double() * (x / total)
            mean[k] = acc.to(v.dtype)
        else:
            mean[k] = v.clone()
    model.load_state_dict(mean)
    return _save_derived(model, cfg, dst, average_of=[
        {"checkpoint": str(s), "weights_sha256": c.get("weights_sha256"), "weight": x / total}
        for s, (_, c), x in zip(sources, loaded, w)])


def _save_derived(model: PromptSegmentationModel, cfg: dict, dst: str | Path,
                  **records: Any) -> Path:
    """Save ``model``, derived from the checkpoint of config ``cfg`` (an average, a grown
    copy), into ``dst``: the config is ``cfg`` with ``records`` added under ``training``, its
    own ``weights_sha256`` and no ``metrics`` (the source's training-time validation did not
    score the derived weights); checked to load."""
    out = dict(cfg)
    out["training"] = {**cfg.get("training", {}), **records}
    out["metrics"] = {}
    d = save_checkpoint(model, out, dst)
    load_checkpoint(d)
    return d


def grow_checkpoint(src: str | Path, dst: str | Path, *, enc_extra: Sequence[int],
                    seed: int = 0) -> Path:
    """Write ``src`` with identity-initialised blocks appended to its image encoder's levels.

    Each level ``i`` gains ``enc_extra[i]`` :class:`~pathxai.segment.modeling.GrowthBlock` s
    (``x + BN(conv(GELU(BN(conv(x)))))``, last BatchNorm at zero), so the grown network
    computes exactly what ``src`` computes until it is trained: a fine-tune of ``dst`` adds
    capacity (depth at the chosen levels) without starting over. Checked on a random
    batch before writing. ``config.json`` is ``src``'s with the larger ``model`` entry,
    ``training.grown_from`` (source, its weights' SHA-256, the blocks added) and no
    ``metrics``.

    Parameters
    ----------
    src, dst : str or Path
        Source checkpoint (folder or packaged name) and output folder.
    enc_extra : sequence of 5 int
        Blocks to add per level (strides 2, 4, 8, 16, 32), each >= 0, at least one > 0.
    seed : int
        Seed of the new blocks' first convolutions.

    Returns
    -------
    Path
        ``dst``.

    Raises
    ------
    CheckpointError
        Bad ``enc_extra``, or a grown network whose output differs from the source's.
    """
    extra = tuple(int(x) for x in enc_extra)
    if len(extra) != 5 or min(extra) < 0 or not any(extra):
        raise CheckpointError(f"enc_extra={tuple(enc_extra)!r} must be 5 counts >= 0 (strides "
                              "2..32), at least one > 0, e.g. (0, 0, 1, 1, 1)")
    model, cfg = load_checkpoint(src)
    mcfg = model.cfg
    grown_extra = tuple(a + b for a, b in zip(mcfg.enc_extra, extra))
    with torch.random.fork_rng(devices=[]):   # the caller's random state is left alone
        torch.manual_seed(seed)
        grown = PromptSegmentationModel(ModelConfig.from_dict(
            {**mcfg.to_dict(), "enc_extra": list(grown_extra)}))
    own = grown.state_dict()
    state = model.state_dict()
    # a level's existing blocks keep their indices; the new ones come after them
    own.update({k: v for k, v in state.items() if k in own and own[k].shape == v.shape})
    grown.load_state_dict(own, strict=True)
    grown.eval()
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        a, b = model.encode_image(x), grown.encode_image(x)
    if not (torch.allclose(a.pixel, b.pixel, atol=1e-5)
            and torch.allclose(a.tokens, b.tokens, atol=1e-5)):
        raise CheckpointError(f"growing {str(src)!r} by {extra} changed its output; the new "
                              "blocks must start as identities")
    return _save_derived(grown, cfg, dst, grown_from={
        "checkpoint": str(src), "weights_sha256": cfg.get("weights_sha256"),
        "enc_extra": list(extra), "seed": int(seed)})
