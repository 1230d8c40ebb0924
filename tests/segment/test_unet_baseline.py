"""Single-task U-Net baseline: sizes, budgeted deterministic training, predictor API, I/O."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pathxai.exceptions import CheckpointError, UnsupportedPromptError
from pathxai.segment.modeling import UNET_SIZES, UNet
from pathxai.segment.unet_baseline import UNetPredictor, load_unet, train_unet, unet_loss


def _n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_unet_shape_and_parameter_counts():
    small, medium = UNet(), UNet(channels="medium")
    assert 0.45e6 <= _n_params(small) <= 0.55e6
    assert 1.5e6 <= _n_params(medium) <= 1.7e6
    assert small.channels == UNET_SIZES["small"]
    y = small.eval()(torch.rand(2, 3, 40, 64))
    assert y.shape == (2, 1, 40, 64)
    assert UNet(3, 4, (4, 8, 8, 16))(torch.rand(1, 3, 16, 16)).shape == (1, 4, 16, 16)
    with pytest.raises(ValueError, match="multiples of 8"):
        small(torch.rand(1, 3, 30, 32))
    with pytest.raises(ValueError, match="unknown U-Net size"):
        UNet(channels="huge")


def test_unet_loss_is_low_for_a_confident_correct_prediction():
    t = torch.zeros(2, 1, 8, 8)
    t[0, :, 2:6, 2:6] = 1
    good = unet_loss((t * 2 - 1) * 20, t)
    bad = unet_loss(-(t * 2 - 1) * 20, t)
    assert float(good["loss"]) < 0.01 < float(bad["loss"])


def _train(seed: int, cpu_seconds: float = 1.5, **kw):
    return train_unet({"synthetic": 1.0}, cpu_seconds=cpu_seconds, stain_aug=True,
                      scale_aug=True, category="nucleus", seed=seed, crop=48, batch_size=2,
                      synthetic_pool=3, channels=(4, 8, 8, 16), log=None, **kw)


def test_train_unet_runs_within_budget_and_is_deterministic():
    model, info = _train(0, cpu_seconds=3.0)
    assert info["steps"] > 1
    assert 3.0 <= info["cpu_seconds"] < 6.0
    assert info["wall_seconds"] > 0 and info["n_parameters"] == _n_params(model)
    assert info["recipe"]["stain_aug"] and info["recipe"]["scale_jitter"] == [0.8, 1.25]
    assert info["data"]["weights"] == {"synthetic": 1.0}
    _, again = _train(0, max_steps=1)
    _, other = _train(1, max_steps=1)
    assert again["steps"] == 1
    assert again["first_loss"] == info["first_loss"]
    assert other["first_loss"] != info["first_loss"]
    assert not model.training


def test_train_unet_rejects_a_category_the_source_lacks():
    from pathxai.segment.train import TrainConfigError

    with pytest.raises(TrainConfigError, match="synthetic source has no 'plasma cell'"):
        train_unet({"synthetic": 1.0}, cpu_seconds=0.1, stain_aug=False, scale_aug=False,
                   category="plasma cell", seed=0, log=None)


@pytest.fixture(scope="module")
def predictor() -> UNetPredictor:
    torch.manual_seed(0)
    return UNetPredictor(UNet(channels=(4, 8, 8, 16)), "nucleus", mpp=0.5, max_side=64,
                         tile=32)


def test_predictor_answers_its_category_only(predictor):
    img = np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    predictor.set_image(img, mpp=0.25)           # resampled to 25x35 and back
    nuc, cell = predictor.predict(["nuclei", "cell-level cell in breast pathology"])
    assert nuc.prompt.label == "nucleus" and cell.prompt.label == "cell"
    assert nuc.mask.shape == img.shape[:2] and nuc.mask.dtype == bool
    assert nuc.probability.shape == img.shape[:2]
    assert nuc.instances is not None and nuc.instances.shape == img.shape[:2]
    assert 0.0 <= nuc.presence <= 1.0
    with pytest.raises(UnsupportedPromptError, match="unet"):
        predictor.predict(["gland"])
    with pytest.raises(UnsupportedPromptError):
        predictor.predict(["neoplastic cells"])


def test_predictor_tiles_large_images_like_one_pass(predictor):
    img = np.random.default_rng(1).integers(0, 255, (100, 90, 3), dtype=np.uint8)
    tiled = predictor.set_image(img, mpp=0.5).predict("nucleus")[0].probability
    predictor.max_side = 1024
    whole = predictor.set_image(img, mpp=0.5).predict("nucleus")[0].probability
    predictor.max_side = 64
    assert tiled.shape == whole.shape == (100, 90)
    # convolutions see different borders near tile edges; the bulk agrees
    assert np.median(np.abs(tiled - whole)) < 0.05


def test_save_load_round_trip(predictor, tmp_path):
    d = predictor.save(tmp_path / "ckpt", note="test")
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["category"] == "nucleus" and cfg["note"] == "test" and cfg["format"] == "pathxai-unet"
    assert not list(d.glob("*.pt")) and (d / "model.safetensors").is_file()
    model, _ = load_unet(d)
    for k, v in predictor.model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0)
    again = UNetPredictor.from_pretrained(d)
    img = np.random.default_rng(2).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    a = predictor.set_image(img, mpp=0.5).predict("nucleus")[0]
    b = again.set_image(img, mpp=0.5).predict("nucleus")[0]
    np.testing.assert_array_equal(a.probability, b.probability)
    with pytest.raises(CheckpointError):
        load_unet(tmp_path / "model.pt")
    with pytest.raises(CheckpointError):
        load_unet(tmp_path / "missing")
