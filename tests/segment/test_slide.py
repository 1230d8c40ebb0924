"""segment_slide: streaming tiles, blending, objects on tile borders counted once, resume."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from scipy import ndimage

from pathxai.segment.ontology import load_ontology
from pathxai.segment.slide import segment_slide
from pathxai.segment.types import PromptResult

CENTRES = [(40, 40), (60, 112), (112, 60), (115, 115), (200, 223), (224, 300), (300, 335),
           (336, 336), (420, 200), (448, 449)]
RADIUS = 6


@pytest.fixture()
def slide_path(tmp_path):
    """A 500 x 480 px 'slide' (tissue pink, glass rim white) with 10 dark round nuclei,
    several of them on the borders of a 128 px / 16 px-overlap tile grid."""
    h, w = 500, 480
    img = np.full((h, w, 3), 245, np.uint8)
    img[10:490, 10:470] = (230, 150, 190)  # eosin-pink tissue
    yy, xx = np.mgrid[:h, :w]
    for cy, cx in CENTRES:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= RADIUS ** 2] = (60, 30, 110)
    p = tmp_path / "slide.tif"
    tifffile.imwrite(p, img, photometric="rgb")
    return p


class DarkNuclei:
    """A deterministic stand-in predictor: nuclei = dark pixels; tissue = not glass."""

    name = "dark-nuclei"
    mpp = 0.5
    tile_size = 128
    batch_size = 4

    def __init__(self):
        self.ontology = load_ontology()
        self.calls = 0
        self.tiles = 0

    def predict_batch(self, images, prompts, *, mpp):
        self.calls += 1
        self.tiles += len(images)
        out = []
        for im in images:
            res = []
            for p in self.ontology.parse_many(prompts):
                if p.label == "nucleus":
                    m = im[..., 0] < 100
                    inst = ndimage.label(m)[0].astype(np.int32)
                else:
                    m, inst = im.min(-1) < 220, None
                res.append(PromptResult(p, m, m.astype(np.float32), float(m.any()), inst))
            out.append(res)
        return out


def test_outputs_follow_the_plain_layout_and_count_border_objects_once(slide_path, tmp_path):
    pred = DarkNuclei()
    out = tmp_path / "masks" / "slide"
    meta = segment_slide(pred, slide_path, ["nuclei", "tissue"], out_dir=out, overlap=16,
                         slide_mpp=0.5, min_tissue=0.01)
    assert meta["mpp"] == 0.5 and meta["shape"] == [500, 480]
    for f in ("nucleus.png", "nucleus.instances.tif", "tissue.png", "meta.json",
              "thumbnails/nucleus.png"):
        assert (out / f).is_file(), f
    nuc = np.asarray(Image.open(out / "nucleus.png")) > 0
    truth = np.zeros((500, 480), bool)
    yy, xx = np.mgrid[:500, :480]
    for cy, cx in CENTRES:
        truth |= (yy - cy) ** 2 + (xx - cx) ** 2 <= RADIUS ** 2
    assert (nuc == truth).mean() > 0.999
    inst = tifffile.imread(out / "nucleus.instances.tif")
    assert inst.shape == (500, 480)
    assert len(np.unique(inst[inst > 0])) == len(CENTRES)
    assert meta["results"]["nucleus"]["n_objects"] == len(CENTRES)
    # every true nucleus is one object (not split at a tile border)
    for cy, cx in CENTRES:
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= RADIUS ** 2
        assert len(np.unique(inst[disc])) == 1 and inst[cy, cx] > 0
    saved = json.loads((out / "meta.json").read_text())
    assert saved["params"]["prompts"][0]["canonical"].startswith("nuclei-level nucleus")
    assert meta["n_tiles"] == pred.tiles > 1


def test_resume_skips_recomputation(slide_path, tmp_path):
    pred = DarkNuclei()
    out = tmp_path / "s"
    segment_slide(pred, slide_path, ["nuclei"], out_dir=out, slide_mpp=0.5)
    calls = pred.calls
    again = segment_slide(pred, slide_path, ["nuclei"], out_dir=out, slide_mpp=0.5)
    assert again.get("resumed") is True and pred.calls == calls
    segment_slide(pred, slide_path, ["nuclei"], out_dir=out, slide_mpp=0.5, overlap=8)
    assert pred.calls > calls  # other parameters: recomputed


def test_model_segmentor_runs_on_a_slide(slide_path, tmp_path):
    from pathxai.segment.build import default_config
    from pathxai.segment.modeling import ModelConfig, PromptSegmentationModel
    from pathxai.segment.predictor import Segmentor

    torch.manual_seed(0)
    cfg = default_config("tiny")
    cfg["trained_labels"] = ["nucleus", "tumor"]
    cfg["tile_size"] = 128
    model = PromptSegmentationModel(ModelConfig(
        vocab_size=len(cfg["vocabulary"]), enc_channels=(8, 8, 16, 16, 16),
        dec_dims=(8, 8, 8, 16, 16), embed_dim=8, dim=16, heads=2, text_depth=1,
        fusion_depth=1, num_queries=4))
    seg = Segmentor(model, cfg, device="cpu")
    meta = seg.segment_slide(slide_path, ["nuclei", "tumour"], out_dir=tmp_path / "m",
                             slide_mpp=0.5)
    assert (tmp_path / "m" / "tumor.png").is_file()
    assert (tmp_path / "m" / "nucleus.instances.tif").is_file()
    assert meta["params"]["checkpoint_hash"] == seg.checkpoint_hash
    # one encoder pass per batch of tiles, for both prompts
    assert seg.n_encoder_calls == -(-meta["n_tiles"] // seg.batch_size)


def _own_objects_reference(lab, target, core, next_id):
    """The per-object loop that _own_objects replaced (kept here as the reference)."""
    cy0, cy1, cx0, cx1 = core
    ids = np.unique(lab[lab > 0])
    if not ids.size:
        return next_id
    cents = ndimage.center_of_mass(np.ones_like(lab), lab, ids)
    for oid, (cy, cx) in zip(ids, cents):
        if not (cy0 <= cy < cy1 and cx0 <= cx < cx1):
            continue
        sel = (lab == oid) & (target == 0)
        if sel.any():
            target[sel] = next_id
            next_id += 1
    return next_id


@pytest.mark.parametrize("seed", range(6))
def test_own_objects_matches_the_per_object_loop(seed):
    from pathxai.segment.slide import _own_objects

    rng = np.random.default_rng(seed)
    h, w = (64, 64) if seed % 2 else (50, 37)      # full and cut (edge) tiles
    blobs = ndimage.gaussian_filter(rng.random((h, w)), 2) > 0.5
    lab = ndimage.label(blobs)[0].astype(np.int32)
    if seed == 5:
        lab[:] = 0                                  # empty tile
    target = np.where(rng.random((h, w)) < 0.3,    # pixels claimed by earlier tiles
                      rng.integers(1, 5, (h, w)), 0).astype(np.uint32)
    target[:, : w // 3] = 0
    core = (8.0, 40.0, 4.0, 30.0) if seed % 3 else (0.0, 64.0, 0.0, 64.0)
    a, b = target.copy(), target.copy()
    rows, cols = np.indices((h, w), dtype=np.float64)
    n_a = _own_objects(lab, a, core, 7, rows, cols)
    n_b = _own_objects_reference(lab, b, core, 7)
    np.testing.assert_array_equal(a, b)
    assert n_a == n_b
    if seed != 5:
        assert n_a > 7


def test_batch_grouping_and_read_ahead_do_not_change_outputs(slide_path, tmp_path, monkeypatch):
    import pathxai.slides.tissue as tissue

    calls = []
    real = tissue.tissue_mask_from_rgb
    monkeypatch.setattr(tissue, "tissue_mask_from_rgb",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    outs = {}
    for bs in (1, 3, None):
        out = tmp_path / f"bs{bs}"
        meta = segment_slide(DarkNuclei(), slide_path, ["nuclei", "tissue"], out_dir=out,
                             overlap=16, slide_mpp=0.5, min_tissue=0.01, batch_size=bs)
        outs[bs] = (np.asarray(Image.open(out / "nucleus.png")),
                    np.asarray(Image.open(out / "tissue.png")),
                    tifffile.imread(out / "nucleus.instances.tif"), meta["results"])
    assert len(calls) == 3            # one tissue detection per slide (tiles and masks)
    for bs in (3, None):
        for x, y in zip(outs[1][:3], outs[bs][:3]):
            np.testing.assert_array_equal(x, y)
        assert outs[1][3] == outs[bs][3]
    assert outs[None][3]["nucleus"]["n_objects"] == len(CENTRES)


def test_a_tile_that_fails_to_read_stops_the_slide_with_its_error(slide_path, tmp_path,
                                                                 monkeypatch):
    from pathxai.slides.tiling import Tile

    real, seen = Tile.read, []

    def read(self, reader):
        seen.append(self.index)
        if len(seen) == 3:
            raise OSError("corrupt JPEG tile")
        return real(self, reader)

    monkeypatch.setattr(Tile, "read", read)
    with pytest.raises(OSError, match="corrupt JPEG tile"):
        segment_slide(DarkNuclei(), slide_path, ["nuclei"], out_dir=tmp_path / "x",
                      slide_mpp=0.5, min_tissue=0.01)
    assert not (tmp_path / "x" / "meta.json").exists()


def test_a_predictor_error_drops_the_queued_reads(slide_path, tmp_path, monkeypatch):
    """The error reaches the caller without first reading the tiles queued ahead (at most
    the one being read finishes)."""
    from pathxai.slides.tiling import Tile

    real, reads = Tile.read, []

    def slow_read(self, reader):
        reads.append(self.index)
        time.sleep(0.02)
        return real(self, reader)

    class Failing(DarkNuclei):
        def predict_batch(self, images, prompts, *, mpp):
            raise MemoryError("out of memory on the first batch")

    monkeypatch.setattr(Tile, "read", slow_read)
    with pytest.raises(MemoryError, match="first batch"):
        segment_slide(Failing(), slide_path, ["nuclei"], out_dir=tmp_path / "y", overlap=0,
                      slide_mpp=0.5, min_tissue=0.01, batch_size=2, tile_size=64)
    # 2 tiles for the first call, up to 3 queued ahead of it (one of them running)
    assert len(reads) <= 2 + 3 + 1
    n_reads = len(reads)
    time.sleep(0.1)
    assert len(reads) == n_reads          # nothing keeps reading after the error


def test_meta_records_read_and_wait_times(slide_path, tmp_path):
    meta = segment_slide(DarkNuclei(), slide_path, ["nuclei"], out_dir=tmp_path / "z",
                         slide_mpp=0.5)
    t = meta["timings_s"]
    assert set(t) == {"total", "read", "read_wait", "predict"}
    assert 0 <= t["read_wait"] <= t["total"] and t["read"] > 0
