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
    build_segmentor,
    default_config,
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
