"""Registry and checkpoints: safetensors + JSON round trip, pickle refused."""

from __future__ import annotations

import json

import pytest
import torch

from pathxai.exceptions import CheckpointError
from pathxai.segment.build import (
    CONFIG_NAME,
    MODEL_REGISTRY,
    WEIGHTS_NAME,
    average_checkpoints,
    build_segmentor,
    default_config,
    grow_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from pathxai.segment.modeling import ModelConfig, PromptSegmentationModel


def _small_model(vocab_size: int) -> PromptSegmentationModel:
    return PromptSegmentationModel(ModelConfig(
        vocab_size=vocab_size, enc_channels=(8, 8, 16, 16, 16), dec_dims=(8, 8, 8, 16, 16),
        embed_dim=8, dim=16, heads=2, text_depth=1, fusion_depth=1, num_queries=4))


def test_registry_has_three_sizes_of_increasing_width():
    assert set(MODEL_REGISTRY) >= {"tiny", "small", "base"}
    dims = [MODEL_REGISTRY[n](100).dim for n in ("tiny", "small", "base")]
    assert dims == sorted(dims) and len(set(dims)) == 3


def test_tiny_is_cpu_sized():
    model, cfg = build_segmentor("tiny")
    n = sum(p.numel() for p in model.parameters())
    assert 0.5e6 <= n <= 2.5e6
    assert cfg["mpp"] == 0.5 and cfg["vocabulary"][:4] == ["[PAD]", "[CLS]", "[SEP]", "[UNK]"]
    # every ontology label has a text (structure + description) for the text encoder
    assert cfg["label_texts"]["lymphocyte"]["structure"] == "cell"


def test_unknown_architecture_names_the_choices():
    with pytest.raises(CheckpointError, match="tiny"):
        default_config("huge")


def test_save_load_round_trip_is_exact(tmp_path):
    torch.manual_seed(0)
    cfg = default_config("tiny")
    model = _small_model(len(cfg["vocabulary"]))
    # make BatchNorm running statistics non-trivial
    model.train()
    model.encode_image(torch.randn(2, 3, 64, 64))
    model.eval()
    d = save_checkpoint(model, cfg, tmp_path / "ck")
    assert sorted(p.name for p in d.iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME])
    loaded, cfg2 = load_checkpoint(d)
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert cfg2["weights_sha256"] and cfg2["n_parameters"] == sum(
        p.numel() for p in model.parameters())
    x = torch.randn(1, 3, 64, 64)
    ids = torch.randint(1, 20, (2, 6))
    with torch.no_grad():
        o1 = model(x, ids, ids == 0, torch.tensor([0, 0]), torch.tensor([0, 1]))
        o2 = loaded(x, ids, ids == 0, torch.tensor([0, 0]), torch.tensor([0, 1]))
    assert torch.equal(o1["mask_logits"], o2["mask_logits"])


def test_pickle_checkpoints_are_refused(tmp_path):
    f = tmp_path / "model.pt"
    torch.save({"a": torch.zeros(1)}, f)  # written only to prove it is never read
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(f)
    d = tmp_path / "folder"
    d.mkdir()
    (d / "weights.pth").write_bytes(f.read_bytes())
    (d / CONFIG_NAME).write_text("{}")
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(d)


def test_mismatched_weights_are_reported(tmp_path):
    cfg = default_config("tiny")
    model = _small_model(len(cfg["vocabulary"]))
    d = save_checkpoint(model, cfg, tmp_path / "ck")
    c = json.loads((d / CONFIG_NAME).read_text())
    c["model"]["dim"] = 32
    (d / CONFIG_NAME).write_text(json.dumps(c))
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(d)


def test_missing_checkpoint_names_the_fix(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope" / "x")
    with pytest.raises(CheckpointError, match="packaged checkpoints"):
        load_checkpoint("no_such_name")


def _saved(tmp_path, name, seed):
    torch.manual_seed(seed)
    cfg = default_config("tiny")
    model = _small_model(len(cfg["vocabulary"]))
    model.train()
    model.encode_image(torch.randn(2, 3, 64, 64))   # non-trivial BatchNorm statistics
    model.eval()
    return model, save_checkpoint(model, cfg, tmp_path / name)


def test_average_checkpoints_is_the_weighted_mean(tmp_path):
    """Every floating tensor (weights and BatchNorm statistics) is the weighted mean of the
    sources; integer buffers come from the first; the config names the sources."""
    a, da = _saved(tmp_path, "a", 0)
    b, db = _saved(tmp_path, "b", 1)
    cfg_a = json.loads((da / CONFIG_NAME).read_text())
    cfg_a["metrics"] = {"validation": {"glas/gland": {"dice": 0.9}}, "step": 10}
    (da / CONFIG_NAME).write_text(json.dumps(cfg_a))
    out = average_checkpoints([da, db], tmp_path / "soup", weights=[3, 1])
    soup, cfg = load_checkpoint(out)
    sa, sb, ss = a.state_dict(), b.state_dict(), soup.state_dict()
    n_float = 0
    for k, v in ss.items():
        if v.is_floating_point():
            n_float += 1
            torch.testing.assert_close(v, 0.75 * sa[k] + 0.25 * sb[k], rtol=1e-6, atol=1e-7)
        else:
            assert torch.equal(v, sa[k]), k
    assert n_float > 10 and any("running_var" in k for k in ss)
    src = cfg["training"]["average_of"]
    assert [s["weight"] for s in src] == [0.75, 0.25]
    assert src[1]["weights_sha256"] == json.loads((db / CONFIG_NAME).read_text())[
        "weights_sha256"]
    assert cfg["weights_sha256"] != src[0]["weights_sha256"]
    assert cfg["metrics"] == {}, "the first source's validation scores are not the soup's"


def test_average_checkpoints_refuses_mismatches(tmp_path):
    _, da = _saved(tmp_path, "a", 0)
    _, db = _saved(tmp_path, "b", 1)
    with pytest.raises(CheckpointError, match="at least two"):
        average_checkpoints([da], tmp_path / "x")
    for bad in ([1.0], [1.0, -1.0], [0.0, 0.0], [float("nan"), 1.0]):
        with pytest.raises(CheckpointError, match="weights="):
            average_checkpoints([da, db], tmp_path / "x", weights=bad)
    other, cfg = build_segmentor("tiny")
    dc = save_checkpoint(other, cfg, tmp_path / "c")
    with pytest.raises(CheckpointError, match="'model' differ"):
        average_checkpoints([da, dc], tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_grown_checkpoint_computes_what_its_source_computes(tmp_path):
    """Growing adds identity-initialised encoder blocks: same outputs (encoder, decoder,
    every head) in eval mode and at the first training step, more parameters; the config
    records the growth, keeps ``enc_extra`` only when non-zero, and the grown checkpoint
    can be averaged with fine-tunes of itself but not with its source."""
    src, d = _saved(tmp_path, "src", 0)
    out = grow_checkpoint(d, tmp_path / "grown", enc_extra=(0, 1, 0, 2, 1), seed=3)
    grown, cfg = load_checkpoint(out)
    assert cfg["model"]["enc_extra"] == [0, 1, 0, 2, 1]
    assert "enc_extra" not in json.loads((d / CONFIG_NAME).read_text())["model"]
    assert cfg["training"]["grown_from"]["enc_extra"] == [0, 1, 0, 2, 1]
    assert cfg["n_parameters"] > sum(p.numel() for p in src.parameters())
    assert cfg["metrics"] == {}
    ids = torch.randint(1, 10, (2, 6))
    pad = torch.zeros(2, 6, dtype=torch.bool)
    x = torch.randn(2, 3, 64, 96)
    ii, pi = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])
    for mode in ("eval", "train"):
        for m in (src, grown):
            m.train(mode == "train")
        with torch.no_grad():
            a, b = src(x, ids, pad, ii, pi), grown(x, ids, pad, ii, pi)
        for k in ("mask_logits", "inst_logits", "presence_logits"):
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-5)
    grown.eval()
    with torch.no_grad():   # a fine-tune of the grown model: same keys, averageable
        for p in grown.parameters():
            p.add_(0.01 * torch.randn_like(p))
    tuned = save_checkpoint(grown, cfg, tmp_path / "tuned")
    average_checkpoints([out, tuned], tmp_path / "soup")
    with pytest.raises(CheckpointError, match="'model' differ"):
        average_checkpoints([d, tuned], tmp_path / "x")
    for bad in ((0, 0, 0, 0, 0), (1, 1), (0, -1, 0, 1, 0)):
        with pytest.raises(CheckpointError, match="enc_extra="):
            grow_checkpoint(d, tmp_path / "bad", enc_extra=bad)
    assert not (tmp_path / "bad").exists()
