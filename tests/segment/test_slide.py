"""segment_slide: streaming tiles, blending, objects on tile borders counted once, resume."""

from __future__ import annotations

import json

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
