"""``Segmentor``: the trained text-prompted model behind the predictor API.

>>> seg = Segmentor.from_pretrained("default")            # doctest: +SKIP
>>> seg.set_image(image, mpp=0.25)                          # encoded once per grid, on first use
>>> tumour, nuclei = seg.predict(["tumour", "nuclei"])      # many prompts, one encoding

Prompt semantics
----------------
Each prompt is parsed by :func:`pathxai.segment.ontology.parse_prompt`. The model answers
the labels it was trained on (``config["trained_labels"]`` of the checkpoint):

* a non-group label (``tumor``) is answered by itself when trained, otherwise by the union
  of its trained descendants (``metastatic tumor`` ...);
* a group label (``inflammatory cell``, ``cell``, ``immune infiltrate``) is answered by the
  union of itself (when trained) and its trained descendants;
* when none of these is trained, :class:`~pathxai.exceptions.UnsupportedPromptError` names
  the labels the checkpoint does answer (never a silent guess).

Union: the per-pixel probability is the maximum over the answering labels; the mask is the
union of the labels whose presence score passes ``presence_threshold`` (then
``probability > mask_threshold``); presence is the maximum presence. Cell- and nucleus-level
prompts also get instances (watershed on the predicted distance map,
:func:`pathxai.segment.postprocess.instances_from_maps`), and their mask is then the union of
those instances (fragments smaller than the minimum object area leave the mask too).
Tissue-level region masks (all but ``background``) are regions, not pixel classes: gaps
narrower than ``2 * close_um`` (default 2 × 6 µm, about two lymphocytes) are closed and
enclosed holes smaller than ``min_hole_um2`` (default 400 µm², a 20 µm square) are filled.
The model tends to carve the nuclei of other cell types (e.g. tumour-infiltrating lymphocytes)
out of a region, which would otherwise put those cells *outside* the region they infiltrate
(on the synthetic demo slides this undercounted lymphocytes inside tumour by a factor of ten).

Scales: cell- and nucleus-level prompts are answered at the checkpoint's ``mpp`` (0.5 µm/px);
tissue-level prompts at its ``tissue_mpp`` when it has one (a coarser grid shows the network
four times the area per pixel at 1.0 µm/px; the shipped checkpoint has none, see its model
card). The image is encoded once per grid that the prompts need; region masks are brought to
the input grid by bilinear interpolation of the mask thresholded at 0.5 (smooth edges),
instance labels by nearest neighbour.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from pathxai.exceptions import MissingMPPError, UnsupportedPromptError

from .build import (
    encode_labels,
    file_sha256,
    label_segments,
    load_checkpoint,
    resolve_checkpoint_dir,
)
from .modeling import STRIDE, ImageState, PromptSegmentationModel, Vocabulary
from .pools import cancelling_pool
from .postprocess import CLOSE_COARSE_PX, close_gaps, instances_from_maps, remove_small_holes
from .types import PromptResult

__all__ = ["Segmentor"]


@dataclass
class _Encoded:
    """Cached encoding of one image on one grid: tiles of ImageState with their boxes."""

    states: list[ImageState]                 # one per tile batch
    boxes: list[list[tuple[int, int, int, int]]]  # per batch: (y0, x0, h, w), padded grid px
    shape: tuple[int, int]                   # image size at the grid's mpp (unpadded)
    views: int = 1                           # test-time views encoded per tile (1 or 4)


def _to_uint8_rgb(image: Any) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or min(image.shape[:2]) < 2:
        raise ValueError(f"image must be an (H, W, 3) RGB array, got shape {image.shape}")
    if image.dtype != np.uint8:
        if np.issubdtype(image.dtype, np.floating) and float(np.nanmax(image)) <= 1.0:
            image = image * 255.0
        image = np.clip(np.nan_to_num(image), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image[..., :3])


def resample_rgb(image: np.ndarray, factor: float, *, min_side: int = 1) -> np.ndarray:
    """Resize a uint8 RGB image ``(H, W, 3)`` by ``factor`` (bilinear, antialiased when
    shrinking); each side becomes ``max(min_side, round(side * factor))``. A factor within
    1e-3 of 1 returns ``image`` itself."""
    if abs(factor - 1.0) < 1e-3:
        return image
    h, w = image.shape[:2]
    size = (max(min_side, int(round(h * factor))), max(min_side, int(round(w * factor))))
    t = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)[None].float()
    t = F.interpolate(t, size=size, mode="bilinear", antialias=factor < 1, align_corners=False)
    return t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def _resize_float(arr: np.ndarray, shape) -> np.ndarray:
    """Bilinear resize of a float map ``(H, W)`` to ``shape`` (antialiased when shrinking)."""
    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))[None, None]
    shrink = shape[0] < arr.shape[0] or shape[1] < arr.shape[1]
    return F.interpolate(t, size=tuple(shape), mode="bilinear", antialias=shrink,
                         align_corners=False)[0, 0].numpy()


def _grid_shape(shape, mpp: float, grid_mpp: float) -> tuple[int, int]:
    """Size ``(h, w)`` of an image of ``shape`` at ``mpp`` once resampled to ``grid_mpp``
    (the rule of :func:`resample_rgb` with ``min_side=STRIDE``)."""
    f = mpp / grid_mpp
    if abs(f - 1.0) < 1e-3:
        return int(shape[0]), int(shape[1])
    return (max(STRIDE, int(round(shape[0] * f))), max(STRIDE, int(round(shape[1] * f))))


def _pad_to_stride(img: np.ndarray) -> np.ndarray:
    """``(h, w, 3)`` padded at the bottom and right (edge values) to multiples of the
    encoder stride."""
    h, w = img.shape[:2]
    return np.pad(img, ((0, (-h) % STRIDE), (0, (-w) % STRIDE), (0, 0)), mode="edge")


def _mean_views(maps: torch.Tensor) -> torch.Tensor:
    """Average ``(V, n, q, H, W)`` maps of the test-time views (identity, flipped left-right,
    up-down, both; V = 1 or 4) after flipping each back; returns ``(n, q, H, W)``."""
    if maps.shape[0] == 1:
        return maps[0]
    return (maps[0] + maps[1].flip(-1) + maps[2].flip(-2) + maps[3].flip(-2, -1)) / 4.0


class _LazyMaps:
    """One image's maps kept at the decoder's stride-2 resolution: row ``j`` is upsampled
    (bilinear) to the tile size, passed through the sigmoid, averaged over the test-time
    views and cropped when it is read, i.e. in the post-processing job that needs it, beside
    the network's next tile batch. Same arithmetic as the batched path, row by row.

    ``logits`` is ``(V, k, h2, w2)`` on the CPU; rows in ``identity_rows`` use view 0 only.
    Rows in ``shared_rows`` (read by more than one prompt, e.g. "lymphocytes" and
    "inflammatory cells") are kept after their first read; the others are not, so memory
    stays at one row per running job. Readers must not modify the returned array.
    """

    __slots__ = ("logits", "size", "crop", "identity_rows", "shared_rows", "_kept")

    def __init__(self, logits: torch.Tensor, size: tuple[int, int], crop: tuple[int, int],
                 identity_rows: frozenset = frozenset(), shared_rows: frozenset = frozenset()):
        self.logits, self.size, self.crop = logits, size, crop
        self.identity_rows, self.shared_rows = identity_rows, shared_rows
        self._kept: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return int(self.logits.shape[1])

    def __getitem__(self, j: int) -> np.ndarray:
        kept = self._kept.get(j)
        if kept is not None:
            return kept
        x = self.logits[:1, j:j + 1] if j in self.identity_rows else self.logits[:, j:j + 1]
        with torch.no_grad():
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
            m = _mean_views(x.sigmoid_()[:, None])[0, 0]
        h, w = self.crop
        out = m[:h, :w].numpy()
        if j in self.shared_rows:   # two jobs racing here both compute it; one copy is kept
            out = self._kept.setdefault(j, out)
        return out


def _check_mpp(mpp: Any) -> float:
    if mpp is None:
        raise MissingMPPError(
            "set_image needs the image's µm per pixel: pass mpp=... (e.g. 0.5 for a 20x scan, "
            "0.25 for 40x)"
        )
    try:
        m = float(mpp)
    except (TypeError, ValueError):
        m = float("nan")
    if not (math.isfinite(m) and 0.01 <= m <= 100):
        raise ValueError(f"mpp must be a positive number of µm per pixel (0.01-100), got {mpp!r}")
    return m


class _InlineExecutor:
    """``submit`` runs the job at once in the calling thread (``postprocess_workers=0``);
    its errors propagate from ``submit`` itself, as in a plain loop."""

    @staticmethod
    def submit(fn: Callable, *args) -> Future:
        fut: Future = Future()
        fut.set_result(fn(*args))
        return fut


@contextmanager
def _post_executor(workers: int) -> Iterator[ThreadPoolExecutor | _InlineExecutor]:
    """Where prompt answers are post-processed: a pool of ``workers`` threads (the
    distance transforms, labelling and watershed release the GIL, so they run beside each
    other and beside the network's next tile batch), or inline when ``workers`` is 0.
    On an error (or an interrupt) queued jobs are cancelled and only running ones waited for.
    """
    if workers <= 0:
        yield _InlineExecutor()
        return
    with cancelling_pool(workers, name="pathxai-postprocess") as ex:
        yield ex


class _Job:
    """A submitted post-processing job that the waiting thread can run itself."""

    __slots__ = ("future", "fn", "args", "_taken", "_value", "_error")

    def __init__(self, ex, fn: Callable, *args):
        self.fn, self.args = fn, args
        self._taken, self._value, self._error = False, None, None
        self.future = ex.submit(fn, *args)

    def run_if_pending(self) -> None:
        """Run the job here if no worker has started it yet (at most once; its error
        propagates, and again from :meth:`result`)."""
        if self._taken or not self.future.cancel():
            return
        self._taken = True
        try:
            self._value = self.fn(*self.args)
        except BaseException as e:
            self._error = e
            raise

    def result(self):
        """The job's result; a job no worker has started yet is run here instead of waited
        for."""
        self.run_if_pending()
        if self._taken:
            if self._error is not None:
                raise self._error
            return self._value
        return self.future.result()


def _drain(jobs: Sequence[_Job]) -> list:
    """Results of ``jobs`` in order. The calling thread first works through the jobs no
    worker has started, from the last one backwards, while the workers take them from the
    front: the queue's tail is shared instead of raced for (taking them in order, the
    caller would find each next job already taken and only wait). It stops at once when a
    worker's job has failed; the first failure in order is then raised."""
    failed = threading.Event()
    for j in jobs:
        j.future.add_done_callback(lambda f: failed.set() if (
            not f.cancelled() and f.exception() is not None) else None)
    for j in reversed(jobs):
        if failed.is_set():
            break
        j.run_if_pending()
    return [j.result() for j in jobs]


def _default_postprocess_workers() -> int:
    """One post-processing thread per torch intra-op thread, at most 4 (so a pipeline
    worker limited to n threads stays near n busy cores)."""
    return min(4, torch.get_num_threads())


def _ramp(n: int, overlap: int) -> np.ndarray:
    """1-D blending weight: linear ramps of ``overlap`` px at both ends, 1 in the middle."""
    w = np.ones(n, np.float32)
    if overlap > 0:
        r = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        w[:overlap] = np.minimum(w[:overlap], r)
        w[-overlap:] = np.minimum(w[-overlap:], r[::-1])
    return w


class Segmentor:
    """Text-prompted segmentation with a trained :class:`PromptSegmentationModel`.

    Parameters
    ----------
    model : PromptSegmentationModel
    config : dict
        The checkpoint config (µm/px, tile size, normalisation, vocabulary, label texts,
        trained labels).
    device : str or torch.device, optional
        Default: CUDA when available (bf16 autocast there), else CPU.
    presence_threshold : float, optional
        Presence score below which a prompt's mask is empty (default from the config, 0.5).
    mask_threshold : float, optional
        Pixel probability threshold (default 0.5).
    min_hole_um2 : float, optional
        Holes enclosed by a tissue-level region mask smaller than this (µm²) are filled
        (default from the config, else 400; 0 disables).
    close_um : float, optional
        Radius (µm) of the closing applied to tissue-level region masks (default from the
        config, else 6; 0 disables).
    max_side : int
        Images up to this side (px on a working grid: :attr:`mpp` or :attr:`tissue_mpp`) are
        encoded in one pass; larger ones in overlapping tiles of ``2 * tile_size`` grid px
        blended linearly.
    batch_size : int
        Tiles per forward pass.
    tta : bool or {"all", "tissue"}
        Test-time augmentation: every tile is also encoded flipped left-right, up-down and
        both, and the probability, distance and presence maps are averaged after flipping
        back (about 4× the network cost; recorded in :attr:`postprocess`). ``True`` or
        ``"all"``: for every prompt; ``"tissue"``: for tissue-level prompts only, while cell
        and nucleus prompts are answered from the unflipped view (exactly as without TTA).
    postprocess_workers : int, optional
        Threads that turn each prompt's maps into masks and instances (thresholds, closing,
        hole filling, watershed), one job per image and prompt, while the calling thread
        runs the network on the next tile batch. Results do not depend on it (each job is a
        pure function of its maps). At most two tile batches are in flight (the one being
        encoded and the one being post-processed), which bounds memory and stops at the first
        error. Default: ``min(4, torch.get_num_threads())`` at construction; 0 runs them
        inline.
    checkpoint_dir : Path, optional
        Where the weights came from (recorded as :attr:`checkpoint_hash`).
    """

    name = "model"

    def __init__(self, model: PromptSegmentationModel, config: dict, *, device=None,
                 presence_threshold: float | None = None, mask_threshold: float | None = None,
                 min_hole_um2: float | None = None, close_um: float | None = None,
                 max_side: int = 1024, batch_size: int = 8, tta: bool | str = False,
                 postprocess_workers: int | None = None, checkpoint_dir: Path | None = None):
        from .ontology import load_ontology

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.config = config
        self.ontology = load_ontology()
        self.vocab = Vocabulary(config["vocabulary"])
        self.presence_threshold = float(
            config.get("presence_threshold", 0.5) if presence_threshold is None
            else presence_threshold)
        self.mask_threshold = float(config.get("mask_threshold", 0.5) if mask_threshold is None
                                    else mask_threshold)
        self.min_hole_um2 = float(config.get("min_hole_um2", 400.0) if min_hole_um2 is None
                                  else min_hole_um2)
        if not math.isfinite(self.min_hole_um2) or self.min_hole_um2 < 0:
            raise ValueError(f"min_hole_um2={min_hole_um2!r} must be a finite area >= 0 µm²")
        self.close_um = float(config.get("close_um", 6.0) if close_um is None else close_um)
        if not math.isfinite(self.close_um) or self.close_um < 0:
            raise ValueError(f"close_um={close_um!r} must be a finite radius >= 0 µm")
        self.max_side = int(max_side)
        self.batch_size = int(batch_size)
        if tta not in (False, True, None, "all", "tissue"):
            raise ValueError(f"tta={tta!r} must be False, True / 'all' (every prompt) or "
                             "'tissue' (tissue-level prompts only)")
        #: test-time augmentation: None, "all" or "tissue" (the prompts it applies to)
        self.tta_mode: str | None = "all" if tta is True else (tta or None)
        workers = _default_postprocess_workers() if postprocess_workers is None \
            else postprocess_workers
        if isinstance(workers, bool) or not isinstance(workers, int | np.integer) \
                or workers < 0:
            raise ValueError(f"postprocess_workers={postprocess_workers!r} must be a whole "
                             "number of threads >= 0 (0 = post-process in the calling thread)")
        self.postprocess_workers = int(workers)
        self.checkpoint_dir = checkpoint_dir
        self.trained_labels = tuple(config.get("trained_labels", ()))
        n = config["normalization"]
        self._mean = torch.tensor(n["mean"], device=self.device)[None, :, None, None]
        self._std = torch.tensor(n["std"], device=self.device)[None, :, None, None]
        self._image: np.ndarray | None = None
        self._image_mpp: float | None = None
        self._encodings: dict[float, _Encoded] = {}
        self._text_cache: dict[tuple, tuple[torch.Tensor, ...]] = {}
        #: number of image-encoder forward passes so far (one per tile batch)
        self.n_encoder_calls = 0
        self.n_encoded_images = 0   # images through the encoder, test-time views included
        self._hash: str | None = None

    # ------------------------------------------------------------------ construction
    @property
    def postprocess(self) -> dict:
        """The settings that turn probabilities into masks (recorded with every output and
        part of the pipeline's segmentation cache key)."""
        return {"presence_threshold": self.presence_threshold,
                "mask_threshold": self.mask_threshold, "min_hole_um2": self.min_hole_um2,
                "close_um": self.close_um,
                "closing": "distance-transform disk closing of radius close_um; radii of at "
                           f"least {2 * CLOSE_COARSE_PX:g} px are closed on a grid floor(radius "
                           f"/ {CLOSE_COARSE_PX:g}) times coarser (postprocess.close_gaps)",
                "tissue_mpp": self.tissue_mpp,
                "test_time_augmentation": None if not self.tta else (
                    "mean over identity and 3 flips" + (
                        " for tissue-level prompts; identity only for cell and nucleus prompts"
                        if self.tta_mode == "tissue" else "")),
                "resampling": "maps bilinear; region masks to the input grid by bilinear "
                              "interpolation thresholded at 0.5, instances nearest neighbour",
                "instances": "watershed on the distance map; mask = union of instances"}

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = "default", **kwargs) -> Segmentor:
        """Load a checkpoint folder or a packaged name (``"default"``); no network access.

        Raises
        ------
        CheckpointError
            Missing / unsafe (pickle) / inconsistent checkpoint.
        """
        d = resolve_checkpoint_dir(name_or_path)
        model, cfg = load_checkpoint(d)
        return cls(model, cfg, checkpoint_dir=d, **kwargs)

    @property
    def tta(self) -> bool:
        """Whether test-time augmentation is on (set at construction: ``tta=``)."""
        return self.tta_mode is not None

    @property
    def mpp(self) -> float:
        """µm per pixel the model works at."""
        return float(self.config["mpp"])

    @property
    def tissue_mpp(self) -> float:
        """µm per pixel tissue-level prompts are answered at: the checkpoint's
        ``tissue_mpp`` (a coarser grid gives those prompts a wider field of view), else
        :attr:`mpp`."""
        return float(self.config.get("tissue_mpp") or self.config["mpp"])

    @property
    def tile_size(self) -> int:
        """Default slide tile side (px at :attr:`mpp`)."""
        return int(self.config["tile_size"])

    @property
    def checkpoint_hash(self) -> str:
        """SHA-256 of the weights file (or of the in-memory state when not from a file)."""
        if self._hash is None:
            if self.checkpoint_dir is not None:
                self._hash = self.config.get("weights_sha256") or file_sha256(
                    Path(self.checkpoint_dir) / "model.safetensors")
            else:
                import hashlib

                h = hashlib.sha256()
                for k, v in sorted(self.model.state_dict().items()):
                    h.update(k.encode())
                    h.update(v.detach().cpu().numpy().tobytes())
                self._hash = h.hexdigest()
        return self._hash

    def __repr__(self) -> str:
        return (f"Segmentor(arch={self.config.get('architecture')!r}, mpp={self.mpp}, "
                f"device={self.device.type}, labels={len(self.trained_labels)})")

    # ------------------------------------------------------------------ prompts
    def answering_labels(self, parsed) -> list[str]:
        """Trained labels whose union answers a parsed prompt (see the module docstring).

        Raises
        ------
        UnsupportedPromptError
            When no trained label answers it.
        """
        trained = set(self.trained_labels)
        label = parsed.label
        desc = [d for d in self.ontology.descendants(label) if d in trained]
        group = self.ontology.labels[label].group
        if group:
            labels = ([label] if label in trained else []) + sorted(desc)
        elif label in trained:
            labels = [label]
        else:
            labels = sorted(desc)
        if not labels:
            raise UnsupportedPromptError(label, f"model {self.config.get('architecture')}",
                                         sorted(trained))
        return labels

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.device.type == "cuda")

    # ------------------------------------------------------------------ encoding
    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self._mean) / self._std

    def _views_for(self, queries) -> int:
        """Test-time views the encoder needs for ``queries``: 4 with ``tta="all"``, or with
        ``tta="tissue"`` when a tissue-level label is among them (cell and nucleus labels
        are answered from the identity view there), else 1."""
        if self.tta_mode == "all":
            return 4
        if self.tta_mode == "tissue" and any(
                self.ontology.structure(lab) == "tissue" for lab, _ in queries):
            return 4
        return 1

    @torch.no_grad()
    def _encode_batch(self, tiles: np.ndarray, views: int | None = None) -> ImageState:
        """Encode ``(B, h, w, 3)`` uint8 tiles (``h, w`` multiples of 32). With ``views=4``
        (default: 4 when :attr:`tta` is on, else 1) the state holds ``4 B`` images: the
        tiles, then the same flipped left-right, up-down, both."""
        views = (4 if self.tta else 1) if views is None else views
        x = torch.from_numpy(np.ascontiguousarray(tiles)).to(self.device)
        x = self._normalize(x.permute(0, 3, 1, 2).float() / 255.0)
        if views == 4:
            x = torch.cat([x, x.flip(-1), x.flip(-2), x.flip(-2, -1)])
        with self._autocast():
            state = self.model.encode_image(x)
        self.n_encoder_calls += 1
        self.n_encoded_images += int(x.shape[0])
        return state

    def set_image(self, image: np.ndarray, *, mpp: float) -> Segmentor:
        """Take ``image`` (H, W, 3) at ``mpp`` µm/px for the following :meth:`predict` calls.

        The image is encoded once per working grid (:attr:`mpp` for cell and nucleus
        prompts, :attr:`tissue_mpp` for tissue-level prompts), on the first prompt that
        needs that grid, and the encoding is cached: any number of prompts reuse it.
        """
        image = _to_uint8_rgb(image)
        mpp = _check_mpp(mpp)
        self._image, self._image_mpp = image, mpp
        self._encodings = {}
        return self

    @property
    def _encoded(self) -> _Encoded:
        """The encoding on the cell/nucleus grid (:attr:`mpp`), computed on first use."""
        return self._encoding(self.mpp)

    def _encoding(self, grid_mpp: float, views: int | None = None) -> _Encoded:
        """Encoding of the current image on the grid of ``grid_mpp`` µm/px with ``views``
        test-time views (default as :meth:`_encode_batch`); cached, and a cached encoding
        with more views serves a request for fewer."""
        if self._image is None:
            raise RuntimeError("call set_image(image, mpp=...) before predict(prompts)")
        views = (4 if self.tta else 1) if views is None else views
        cached = self._encodings.get(grid_mpp)
        if cached is not None and cached.views >= views:
            return cached
        image, mpp = self._image, self._image_mpp
        img = resample_rgb(image, mpp / grid_mpp, min_side=STRIDE)
        h, w = img.shape[:2]
        if max(h, w) <= self.max_side:
            padded = _pad_to_stride(img)
            states = [self._encode_batch(padded[None], views)]
            boxes = [[(0, 0, *padded.shape[:2])]]
        else:
            tile = 2 * self.tile_size
            step = tile - self.tile_size // 4
            ys = list(range(0, max(1, h - tile), step)) + [max(0, h - tile)]
            xs = list(range(0, max(1, w - tile), step)) + [max(0, w - tile)]
            ph, pw = max(0, tile - h), max(0, tile - w)
            padded = np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="edge")
            all_boxes = sorted({(y, x, tile, tile) for y in ys for x in xs})
            states, boxes = [], []
            for i in range(0, len(all_boxes), self.batch_size):
                chunk = all_boxes[i:i + self.batch_size]
                batch = np.stack([padded[y:y + th, x:x + tw] for y, x, th, tw in chunk])
                states.append(self._encode_batch(batch, views))
                boxes.append(chunk)
        enc = _Encoded(states, boxes, (h, w), views)
        self._encodings[grid_mpp] = enc
        return enc

    # ------------------------------------------------------------------ decoding
    def grid_mpp(self, label: str) -> float:
        """µm/px at which ``label`` is answered: :attr:`tissue_mpp` for tissue-level labels,
        :attr:`mpp` for cell and nucleus labels."""
        return self.tissue_mpp if self.ontology.structure(label) == "tissue" else self.mpp

    def _prompt_grid(self, p) -> float:
        return self.mpp if p.is_instance_level else self.tissue_mpp

    def _queries(self, parsed: list) -> tuple[list[tuple[str, Any]], list[list[int]]]:
        queries: list[tuple[str, Any]] = []
        which: list[list[int]] = []
        for p in parsed:
            idx = []
            for lab in self.answering_labels(p):
                key = (lab, p.region)
                if key not in queries:
                    queries.append(key)
                idx.append(queries.index(key))
            which.append(idx)
        return queries, which

    def _padded_text(self, queries):
        """Encode all query texts as one padded batch (cached per query list)."""
        key = tuple(queries)
        if key in self._text_cache:
            return self._text_cache[key]
        segs = []
        for lab, region in queries:
            lt = self.config.get("label_texts", {}).get(lab) or {
                "structure": self.ontology.structure(lab), "description": self.ontology.describe(lab)}
            segs.append(label_segments(lab, lt["structure"], region, lt["description"]))
        ids, pad = encode_labels(self.vocab, segs, self.model.cfg.max_text_len)
        with torch.no_grad(), self._autocast():
            tok, pooled = self.model.encode_text(ids.to(self.device), pad.to(self.device))
        if len(self._text_cache) > 64:
            self._text_cache.clear()
        self._text_cache[key] = (tok, pad.to(self.device), pooled)
        return self._text_cache[key]

    def _instance_queries(self, queries) -> list[int]:
        """Positions of the cell/nucleus labels in ``queries``: the only ones with a distance
        map (tissue-level regions have no instances)."""
        return [k for k, (lab, _) in enumerate(queries)
                if self.ontology.structure(lab) in ("cell", "nuclei")]

    @torch.no_grad()
    def _maps_for_state(self, state: ImageState, n_images: int, queries,
                        lazy_crop: tuple[int, int] | None = None,
                        shared: frozenset = frozenset()):
        """Probability ``(n, q, H, W)``, distance ``(n, q_i, H, W)`` for the ``q_i``
        cell/nucleus queries only (:meth:`_instance_queries`, in their order) and presence
        ``(n, q)`` as numpy.

        With ``lazy_crop=(h, w)`` (CPU only) the probability and distance maps are returned
        as one :class:`_LazyMaps` per image instead, cropped to ``(h, w)`` when read: the
        upsampling then runs in the post-processing jobs, off the network's thread; the
        rows of the query positions in ``shared`` (answering more than one prompt) are
        upsampled once.
        """
        tok, pad, pooled = self._padded_text(queries)
        q = len(queries)
        n_all = int(state.tokens.shape[0])
        n_views = n_all // n_images   # as encoded: 1, or 4 test-time views
        ii = torch.arange(n_all, device=self.device).repeat_interleave(q)
        pi = torch.arange(q, device=self.device).repeat(n_all)
        with self._autocast():
            out = self.model.decode(state, ii, tok[pi], pad[pi], pooled[pi],
                                    full_resolution=False)
        size = state.size
        pres_views = out["presence_logits"].float().sigmoid().view(n_views, n_images, q)
        pres = pres_views.mean(0)
        inst_q = self._instance_queries(queries)
        # tta="tissue": cell and nucleus queries keep the identity view only
        identity_only = n_views > 1 and self.tta_mode == "tissue"
        if identity_only and inst_q:
            pres[:, inst_q] = pres_views[0][:, inst_q]
        if lazy_crop is not None and self.device.type == "cpu":
            prob, dist = self._lazy_maps(out, n_views, n_images, q, inst_q, identity_only,
                                         size, lazy_crop, shared)
            return prob, dist, pres.cpu().numpy()
        logits = out["mask_logits"].float()[:, None]
        prob = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        prob_views = prob.sigmoid_().view(n_views, n_images, q, *size)
        prob = _mean_views(prob_views)
        if identity_only and inst_q:
            prob[:, inst_q] = prob_views[0][:, inst_q]
        if inst_q:
            il = out["inst_logits"].float().view(n_all, q, *out["inst_logits"].shape[-2:])
            il = F.interpolate(il[:, inst_q], size=size, mode="bilinear", align_corners=False)
            il = il.sigmoid_().view(n_views, n_images, len(inst_q), *size)
            dist = (il[0] if identity_only else _mean_views(il)).cpu().numpy()
        else:
            dist = np.zeros((n_images, 0, *size), np.float32)
        return prob.cpu().numpy(), dist, pres.cpu().numpy()

    @staticmethod
    def _lazy_maps(out: dict, n_views: int, n_images: int, q: int, inst_q: list[int],
                   identity_only: bool, size, crop, shared: frozenset = frozenset()
                   ) -> tuple[list, list]:
        """:meth:`_maps_for_state`'s lazy probability and distance maps (one
        :class:`_LazyMaps` each per image) from the decoder output ``out``; with
        ``identity_only`` the ``inst_q`` rows use view 0 only; the rows of the query
        positions in ``shared`` are kept once read."""
        logits = out["mask_logits"].float().view(n_views, n_images, q, *out[
            "mask_logits"].shape[-2:])
        rows = frozenset(inst_q) if identity_only else frozenset()
        prob = [_LazyMaps(logits[:, k], size, crop, rows, shared) for k in range(n_images)]
        il = out["inst_logits"].float().view(n_views, n_images, q, *out[
            "inst_logits"].shape[-2:])[:, :, inst_q]
        rows = frozenset(range(len(inst_q))) if identity_only else frozenset()
        dist_shared = frozenset(c for c, j in enumerate(inst_q) if j in shared)
        dist = [_LazyMaps(il[:, k], size, crop, rows, dist_shared) for k in range(n_images)]
        return prob, dist

    def _grid_maps(self, enc: _Encoded, queries) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(q, h, w)`` probability, ``(q_i, h, w)`` distance (cell/nucleus queries only)
        and ``(q,)`` presence of ``queries`` on one cached encoding (tiles blended)."""
        h, w = enc.shape
        q, qi = len(queries), len(self._instance_queries(queries))
        if len(enc.states) == 1 and len(enc.boxes[0]) == 1:
            prob, dist, pres = self._maps_for_state(enc.states[0], 1, queries)
            return prob[0, :, :h, :w], dist[0, :, :h, :w], pres[0]
        hp = max(h, max(b[0] + b[2] for bb in enc.boxes for b in bb))
        wp = max(w, max(b[1] + b[3] for bb in enc.boxes for b in bb))
        acc_p = np.zeros((q, hp, wp), np.float32)
        acc_d = np.zeros((qi, hp, wp), np.float32)
        acc_w = np.zeros((hp, wp), np.float32)
        pres_all = []
        for state, boxes in zip(enc.states, enc.boxes):
            pb, db, sb = self._maps_for_state(state, len(boxes), queries)
            for k, (y, x, th, tw) in enumerate(boxes):
                wt = np.outer(_ramp(th, self.tile_size // 8), _ramp(tw, self.tile_size // 8))
                acc_p[:, y:y + th, x:x + tw] += pb[k] * wt
                acc_d[:, y:y + th, x:x + tw] += db[k] * wt
                acc_w[y:y + th, x:x + tw] += wt
                pres_all.append(sb[k])
        acc_w = np.maximum(acc_w, 1e-6)
        return ((acc_p / acc_w)[:, :h, :w], (acc_d / acc_w)[:, :h, :w],
                np.max(np.stack(pres_all), axis=0))

    def _split_by_grid(self, queries) -> dict[float, list[int]]:
        groups: dict[float, list[int]] = {}
        for k, (lab, _) in enumerate(queries):
            groups.setdefault(self.grid_mpp(lab), []).append(k)
        return groups

    def _answer(self, p, idx, maps: dict, grid_of: dict, queries, pres_q: np.ndarray,
                input_shape, input_mpp, t0) -> PromptResult:
        """One prompt's result from per-grid maps (``maps[grid] = (prob, dist, pres,
        position of each query in the grid's probability arrays, position of each cell/nucleus
        query in its distance arrays)``), computed on the prompt's grid (:attr:`tissue_mpp`
        for tissue-level prompts, :attr:`mpp` otherwise); maps of an answering label that
        lives on another grid are resampled onto it."""
        g = self._prompt_grid(p)
        shape = _grid_shape(input_shape, input_mpp, g)
        prs, dss = [], []
        for i in idx:
            prob, dist, _, pos, dpos = maps[grid_of[i]]
            pr = prob[pos[i]]
            if pr.shape != shape:
                pr = _resize_float(pr, shape)
            prs.append(pr)
            if p.is_instance_level:   # a region label answering it has no distance map
                ds = dist[dpos[i]] if i in dpos else np.zeros(shape, np.float32)
                dss.append(ds if ds.shape == shape else _resize_float(ds, shape))
        mask, probability, presence, d = self._combine(
            p, np.stack(prs), np.stack(dss) if dss else None, pres_q[idx], g)
        inst = instances_from_maps(mask, d, mpp=g) if d is not None else None
        if inst is not None:   # the mask is the objects: specks below min area go from both
            mask = inst > 0
        return self._to_input(p, mask, probability, presence, inst, idx, queries, pres_q,
                              input_shape, input_mpp, g, t0)

    def _combine(self, p, pr, dist, ps, mpp_grid: float) -> tuple:
        """Union of the answering labels' maps ``(k, H, W)`` with presences ``(k,)`` and,
        for instance-level prompts, their distance maps ``(k, H, W)`` (else None) →
        (mask, prob, presence, dist or None)."""
        keep = ps >= self.presence_threshold
        probability = pr.max(0)
        mask = np.zeros(probability.shape, bool)
        for k in np.flatnonzero(keep):
            mask |= pr[k] > self.mask_threshold
        if not p.is_instance_level and p.label != "background" and mask.any():
            mask = close_gaps(mask, radius=self.close_um / mpp_grid, coarse_px=CLOSE_COARSE_PX)
            mask = remove_small_holes(mask, max_size=int(self.min_hole_um2 / mpp_grid ** 2))
        d = dist.max(0) if p.is_instance_level else None
        return mask, probability, float(ps.max()), d

    def predict(self, prompts: str | Any | Sequence[str | Any]) -> list[PromptResult]:
        """Answer prompts on the image of the last :meth:`set_image`.

        Parameters
        ----------
        prompts : str or ParsedPrompt, or a sequence of them

        Returns
        -------
        list of PromptResult
            One per prompt; masks, probabilities and instances on the input image's grid.

        Raises
        ------
        UnknownPromptError, UnsupportedPromptError
        """
        if self._image is None:
            raise RuntimeError("call set_image(image, mpp=...) before predict(prompts)")
        t0 = time.perf_counter()
        parsed = self.ontology.parse_many(prompts)
        queries, which = self._queries(parsed)
        per_grid = {}
        for g, ks in self._split_by_grid(queries).items():
            qs = [queries[k] for k in ks]
            per_grid[g] = (*self._grid_maps(self._encoding(g, self._views_for(qs)), qs), ks)
        maps, grid_of, pres_q = self._index_grids(per_grid, queries)
        workers = min(self.postprocess_workers, len(parsed)) if len(parsed) > 1 else 0
        with _post_executor(workers) as ex:
            return _drain([_Job(ex, self._answer, p, idx, maps, grid_of, queries, pres_q,
                                self._image.shape[:2], self._image_mpp, t0)
                           for p, idx in zip(parsed, which)])

    def _index_grids(self, per_grid: dict, queries) -> tuple[dict, dict, np.ndarray]:
        """From ``per_grid[g] = (prob, dist, pres, query indices on g)`` of one image, the
        lookups :meth:`_answer` needs: ``maps[g]`` (with each query's position in the grid's
        probability arrays and each cell/nucleus query's in its distance arrays),
        ``grid_of[query]`` and the presence of every query."""
        maps, grid_of = {}, {}
        pres_q = np.zeros(len(queries), np.float32)
        for g, (prob, dist, pres, ks) in per_grid.items():
            inst = self._instance_queries([queries[k] for k in ks])
            maps[g] = (prob, dist, pres, {q: j for j, q in enumerate(ks)},
                       {ks[j]: c for c, j in enumerate(inst)})
            pres_q[ks] = pres
            grid_of.update(dict.fromkeys(ks, g))
        return maps, grid_of, pres_q

    def _to_input(self, p, mask, probability, presence, inst, idx, queries, pres,
                  shape, input_mpp, grid_mpp, t0) -> PromptResult:
        """Bring a prompt's arrays from its working grid to the input image's grid."""
        if mask.shape != tuple(shape):
            probability = _resize_float(probability, shape)
            if inst is not None:
                it = torch.from_numpy(inst.astype(np.float32))[None, None]
                inst = F.interpolate(it, size=tuple(shape), mode="nearest-exact")[0, 0].numpy()
                inst = inst.astype(np.int32)
                mask = inst > 0
            else:   # regions: smooth edges instead of blocks when upsampling
                mask = _resize_float(mask.astype(np.float32), shape) >= 0.5
        return PromptResult(
            prompt=p, mask=mask, probability=probability.astype(np.float32, copy=False),
            presence=presence, instances=inst,
            extra={"backend": self.name, "answered_by": [queries[i][0] for i in idx],
                   "label_presence": {queries[i][0]: float(pres[i]) for i in idx},
                   "model_mpp": grid_mpp, "image_mpp": input_mpp,
                   "seconds": time.perf_counter() - t0},
        )

    def predict_batch(self, images: Sequence[np.ndarray], prompts, *, mpp: float
                      ) -> list[list[PromptResult]]:
        """Answer ``prompts`` on each image; same-size images are resampled to each working
        grid and encoded together in batches of :attr:`batch_size` (one encoder pass per
        batch and grid).

        Returns
        -------
        list (per image) of list (per prompt) of PromptResult
        """
        mpp = _check_mpp(mpp)
        images = [_to_uint8_rgb(im) for im in images]
        t0 = time.perf_counter()
        parsed = self.ontology.parse_many(prompts)
        queries, which = self._queries(parsed)
        groups = self._split_by_grid(queries)
        shapes = {im.shape for im in images}
        small = all(max(s[:2]) * mpp / g <= self.max_side for s in shapes for g in groups)
        saved = (self._image, self._image_mpp, self._encodings)
        try:
            if len(shapes) != 1 or not small:
                out = []
                for im in images:
                    self.set_image(im, mpp=mpp)
                    out.append(self.predict(parsed))
                return out
            return self._predict_same_size(images, mpp, parsed, queries, which, groups, t0)
        finally:   # the image of the caller's last set_image stays current
            self._image, self._image_mpp, self._encodings = saved

    @staticmethod
    def grid_batch(images: Sequence[np.ndarray], *, mpp: float, grid_mpp: float
                   ) -> tuple[np.ndarray, tuple[int, int]]:
        """Same-size uint8 RGB images at ``mpp`` resampled to ``grid_mpp`` and padded (edge)
        to multiples of the encoder stride: ``(B, H', W', 3)`` and the unpadded ``(h, w)``."""
        grid = [resample_rgb(im, mpp / grid_mpp, min_side=STRIDE) for im in images]
        return np.stack([_pad_to_stride(im) for im in grid]), grid[0].shape[:2]

    def _predict_same_size(self, images, mpp, parsed, queries, which, groups, t0
                           ) -> list[list[PromptResult]]:
        jobs: list[list[_Job]] = [[] for _ in images]
        uses = Counter(k for idx in which for k in idx)   # prompts each query answers
        # per grid, the positions of its queries that answer more than one prompt
        shared = {g: frozenset(j for j, k in enumerate(ks) if uses[k] > 1)
                  for g, ks in groups.items()}
        with _post_executor(self.postprocess_workers) as ex:
            for i in range(0, len(images), self.batch_size):
                # the batch before the previous one must be done: bounded memory, and an
                # error stops the loop here instead of after every batch
                _drain([j for row in jobs[max(0, i - 2 * self.batch_size):
                                          max(0, i - self.batch_size)] for j in row])
                chunk = images[i:i + self.batch_size]
                per_grid = {}
                for g, ks in groups.items():
                    batch, (h, w) = self.grid_batch(chunk, mpp=mpp, grid_mpp=g)
                    qs = [queries[k] for k in ks]
                    prob, dist, pres = self._maps_for_state(
                        self._encode_batch(batch, self._views_for(qs)), len(chunk), qs,
                        lazy_crop=(h, w), shared=shared[g])
                    if isinstance(prob, np.ndarray):   # on CUDA the maps come upsampled
                        prob, dist = prob[:, :, :h, :w], dist[:, :, :h, :w]
                    per_grid[g] = (prob, dist, pres, ks)
                for k in range(len(chunk)):   # post-processed while the next batch runs
                    maps, grid_of, pres_q = self._index_grids(
                        {g: (pr[k], di[k], ps[k], ks)
                         for g, (pr, di, ps, ks) in per_grid.items()}, queries)
                    jobs[i + k] = [_Job(ex, self._answer, p, idx, maps, grid_of, queries,
                                        pres_q, chunk[k].shape[:2], mpp, t0)
                                   for p, idx in zip(parsed, which)]
            flat = _drain([j for row in jobs for j in row])
            n = len(parsed)
            return [flat[k * n:(k + 1) * n] for k in range(len(images))]

    def segment_slide(self, slide, prompts, *, out_dir, **kwargs) -> dict:
        """Segment a whole slide; see :func:`pathxai.segment.slide.segment_slide`."""
        from .slide import segment_slide

        return segment_slide(self, slide, prompts, out_dir=out_dir, **kwargs)
