"""Training: targets, augmentation, losses, overfitting one patch, checkpoint + resume."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from pathxai.segment import data as D
from pathxai.segment.train import TrainConfig, TrainConfigError, compute_losses, dice_score, train


def test_distance_target_of_a_square():
    inst = np.zeros((9, 9), int)
    inst[2:7, 2:7] = 1
    d = D.distance_target(inst)
    # 5x5 square: boundary ring 1/3, next ring 2/3, centre 1, outside 0
    assert d[4, 4] == pytest.approx(1.0)
    assert d[2, 2] == pytest.approx(1 / 3) and d[2, 4] == pytest.approx(1 / 3)
    assert d[3, 4] == pytest.approx(2 / 3)
    assert d[0, 0] == 0.0


def test_distance_target_separates_touching_objects():
    inst = np.zeros((5, 10), int)
    inst[:, :5] = 1
    inst[:, 5:] = 2
    d = D.distance_target(inst)
    # the shared border is a boundary of both objects
    assert d[2, 4] < d[2, 2] and d[2, 5] < d[2, 7]


def test_stain_jitter_without_jitter_is_identity():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 8, 8) * 0.9 + 0.05
    y = D.stain_jitter(x, g, sigma=0.0, bias=0.0)
    torch.testing.assert_close(y, x, atol=1e-4, rtol=1e-4)


def test_stain_jitter_changes_colour_but_keeps_range():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 8, 8)
    y = D.photometric_augment(x, g)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert not torch.allclose(x, y)


def test_dice_and_losses_on_perfect_and_empty_predictions():
    t = np.zeros((4, 4), bool)
    t[:2] = True
    assert dice_score(t, t) == 1.0 and dice_score(~t, t) == 0.0
    assert dice_score(np.zeros_like(t), np.zeros_like(t)) == 1.0
    masks = torch.from_numpy(np.stack([t, np.zeros_like(t)]).astype(np.float32))
    good = {"mask_logits": (masks * 2 - 1) * 20, "inst_logits": torch.zeros(2, 4, 4),
            "presence_logits": torch.tensor([20.0, -20.0])}
    bad = {"mask_logits": -(masks * 2 - 1) * 20, "inst_logits": torch.zeros(2, 4, 4),
           "presence_logits": torch.tensor([-20.0, 20.0])}
    w = {"bce": 1, "dice": 1, "presence": 1, "instance": 1}
    has = torch.tensor([False, False])
    lg = compute_losses(good, masks, torch.zeros(2, 4, 4), has, w)
    lb = compute_losses(bad, masks, torch.zeros(2, 4, 4), has, w)
    assert lg["loss"] < 0.01 < 10 < lb["loss"]


def test_heldout_split_keeps_cases_together(shared_data):
    from pathxai.datasets.index import read_index

    idx = read_index(shared_data / "index.csv")
    s = D.heldout_split(idx)["heldout"]
    assert s["bcss_mini"] and all(i.startswith("1019_") for i in s["bcss_mini"])
    ebhi = set(idx.loc[idx.dataset == "ebhi_seg", "image_id"])
    held_cases = {i.split("-")[0].lower() for i in s["ebhi_seg"]}
    train_cases = {i.split("-")[0].lower() for i in ebhi - set(s["ebhi_seg"])}
    assert held_cases and not held_cases & train_cases
    kather_classes = idx.loc[idx.image_id.isin(s["kather2016"]), "category"]
    assert kather_classes.is_unique and len(kather_classes) == 6


def test_config_rejects_unknown_keys(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: x\nlearning_rate: 1\n")
    with pytest.raises(TrainConfigError, match="learning_rate"):
        TrainConfig.from_yaml(p)


def test_overfits_one_synthetic_patch():
    """A few dozen AdamW steps on one patch must cut the loss clearly."""
    from pathxai.datasets import render_patch
    from pathxai.segment.build import default_config, encode_labels, label_segments
    from pathxai.segment.modeling import ModelConfig, PromptSegmentationModel, Vocabulary

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    p = render_patch(rng, (64, 64), mpp=0.5)
    cfg = default_config("tiny")
    vocab = Vocabulary(cfg["vocabulary"])
    model = PromptSegmentationModel(ModelConfig(
        vocab_size=len(vocab), enc_channels=(8, 16, 16, 16, 16), dec_dims=(8, 8, 16, 16, 16),
        embed_dim=8, dim=16, heads=2, text_depth=1, fusion_depth=1, num_queries=4))
    labels = ["nucleus", "tissue", "adipose tissue"]
    segs = [label_segments(lab, cfg["label_texts"][lab]["structure"], None,
                           cfg["label_texts"][lab]["description"]) for lab in labels]
    ids, pad = encode_labels(vocab, segs, 48)
    masks = torch.from_numpy(np.stack([p.nuclei > 0, p.tissue > 0, p.tissue == 4])
                             .astype(np.float32))
    inst = torch.from_numpy(np.stack([D.distance_target(p.nuclei), np.zeros((64, 64)),
                                      np.zeros((64, 64))]).astype(np.float32))
    has = torch.tensor([True, False, False])
    x = torch.from_numpy(p.image).permute(2, 0, 1)[None].float() / 255 - 0.5
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        out = model(x, ids, pad, torch.zeros(3, dtype=torch.long), torch.arange(3))
        loss = compute_losses(out, masks, inst, has, {})["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0]


def test_train_checkpoints_and_resumes(tmp_path):
    cfg = TrainConfig(name="t", total_steps=3, warmup_steps=1, batch_size=2, crop=64,
                      log_every_steps=1, out_dir=str(tmp_path / "run"), val_synthetic=1,
                      sources={"synthetic": 1.0}, labels_per_sample=3)
    run = train(cfg, log=lambda s: None)
    state = json.loads((run / "last" / "train_state.json").read_text())
    assert state["step"] == 3 and state["final"]
    from pathxai.segment.build import load_checkpoint

    _, ck = load_checkpoint(run / "last")
    assert ck["training"]["step"] == 3
    assert set(ck["trained_labels"]) <= set(ck["label_texts"]) and ck["trained_labels"]
    cfg.total_steps = 5
    train(cfg, resume=True, log=lambda s: None)
    state = json.loads((run / "last" / "train_state.json").read_text())
    assert state["step"] == 5
    cfg.total_steps = 6  # a second resume reads moments written by a resumed run
    train(cfg, resume=True, log=lambda s: None)
    log = (run / "log.txt").read_text()
    assert "resumed" in log and "at step 3" in log and "at step 5" in log
    assert "does not match" not in log  # AdamW moments were restored both times
    from safetensors.torch import load_file

    from pathxai.segment.build import load_checkpoint as load

    model, _ = load(run / "last")
    params = list(model.parameters())
    moments = load_file(str(run / "last" / "optimizer.safetensors"))
    for i, p in enumerate(params):
        assert moments[f"state.{i}.exp_avg"].shape == p.shape


def test_fine_tuning_starts_from_the_given_checkpoint(tmp_path):
    """init_from loads the shipped weights; with lr = 0 one step leaves the parameters
    unchanged (normalisation running statistics do move in train mode)."""
    from safetensors.torch import load_file

    from pathxai.segment.build import resolve_checkpoint_dir

    shipped = resolve_checkpoint_dir("default")
    cfg = TrainConfig(name="ft", total_steps=1, warmup_steps=1, batch_size=2, crop=64, lr=0.0,
                      out_dir=str(tmp_path / "ft"), val_synthetic=1, labels_per_sample=2,
                      sources={"synthetic": 1.0}, init_from="default")
    run = train(cfg, log=lambda s: None)
    before = load_file(str(shipped / "model.safetensors"))
    after = load_file(str(run / "last" / "model.safetensors"))
    assert before.keys() == after.keys()
    params = [k for k in before if not k.endswith(("running_mean", "running_var",
                                                   "num_batches_tracked"))]
    assert len(params) > 10
    assert all(torch.equal(before[k], after[k]) for k in params)
    assert "fine-tuning from checkpoint 'default'" in (run / "log.txt").read_text()


def test_fine_tuning_refuses_a_different_resolution(tmp_path):
    cfg = TrainConfig(name="ft", total_steps=1, mpp=0.25, out_dir=str(tmp_path / "ft"),
                      sources={"synthetic": 1.0}, init_from="default")
    with pytest.raises(TrainConfigError, match="µm/px"):
        train(cfg, log=lambda s: None)


def test_shipped_recipe_configs_parse_and_chain_like_the_rebuild_script():
    """The shipped checkpoint's recorded phases name the package's configs, in the order of
    analyses/train_default_checkpoint.sh, and each fine-tuning phase starts from the previous
    phase's run, average or grown copy (so the one documented command rebuilds the recipe)."""
    from pathlib import Path

    import pathxai.segment as seg_pkg

    pkg = Path(seg_pkg.__file__).parent
    repo = pkg.parents[1]
    cfgs = {p.name: TrainConfig.from_yaml(p) for p in sorted((pkg / "configs").glob("*.yaml"))}
    assert cfgs, "no training configs shipped"
    shipped = json.loads((pkg / "weights" / "default" / "config.json").read_text())
    phases = shipped["training"]["phases"]
    script = (repo / "analyses" / "train_default_checkpoint.sh").read_text()

    def line(ph):   # the script's line for a training phase, an average or a growth
        if "average_of" in ph:
            return f"average {' '.join(ph['average_of'])} {ph['run']}/last"
        if "grown_from" in ph:
            return (f"grow {ph['grown_from']} {ph['run']}/last "
                    f"{' '.join(map(str, ph['enc_extra']))} {ph['seed']}")
        return f"configs/{Path(ph['config']).name} --out {ph['run']}"

    order = [script.index(line(ph)) for ph in phases]
    assert order == sorted(order), "phases run in another order than the script"
    for prev, ph in zip(phases, phases[1:]):
        if "average_of" in ph:   # averages the previous phase's end with an earlier checkpoint
            assert ph["average_of"][-1] == f"{prev['run']}/last" and ph["minutes"] == 0
            assert ph["average_of"][0] in {f"{q['run']}/last" for q in phases}, ph
            continue
        if "grown_from" in ph:   # a grown copy of the previous phase's end, no training
            assert ph["grown_from"] == f"{prev['run']}/last" and ph["minutes"] == 0, ph
            continue
        cfg = cfgs[Path(ph["config"]).name]
        assert cfg.init_from in (None, f"{prev['run']}/last"), (ph["config"], cfg.init_from)
        assert ph["end_step"] > 0 and ph["minutes"] > 0
    last = cfgs[Path([ph for ph in phases if "config" in ph][-1]["config"]).name]
    assert shipped["training"]["config"]["name"] == last.name
    assert shipped["training"]["config"]["crop"] == last.crop
    assert shipped["training"]["total_minutes"] == pytest.approx(
        sum(ph["minutes"] for ph in phases), abs=0.2)
    assert f'"$PY" - {phases[-1]["run"]}/last' in script, "the script exports another run"


def test_tissue_scale_crops_carry_only_tissue_targets_and_are_recorded(tmp_path, monkeypatch):
    """tissue_mpp: a share of crops is drawn at the coarser µm/px with tissue-level targets
    only; the checkpoint records tissue_mpp so the predictor answers tissue prompts there."""
    from pathxai.segment import train as T
    from pathxai.segment.ontology import load_ontology

    seen = []
    real = T._make_batch

    def spy(samples, *a, **k):
        seen.extend(samples)
        return real(samples, *a, **k)

    monkeypatch.setattr(T, "_make_batch", spy)
    cfg = TrainConfig(name="t", total_steps=4, warmup_steps=1, batch_size=4, crop=64,
                      out_dir=str(tmp_path / "run"), val_synthetic=1, labels_per_sample=3,
                      sources={"synthetic": 1.0}, tissue_mpp=1.0, tissue_scale_prob=0.5)
    run = train(cfg, log=lambda s: None)
    onto = load_ontology()
    coarse = [s for s in seen if s.extra.get("mpp") == 1.0]
    fine = [s for s in seen if "mpp" not in s.extra]
    assert coarse and fine and len(coarse) + len(fine) == 16
    assert all(onto.structure(t.label) == "tissue" for s in coarse for t in s.targets)
    assert any(onto.structure(t.label) != "tissue" for s in fine for t in s.targets)
    from pathxai.segment.build import load_checkpoint

    _, ck = load_checkpoint(run / "last")
    assert ck["tissue_mpp"] == 1.0 and ck["mpp"] == 0.5
    # validation: tissue labels scored on 1.0 µm/px patches, cell labels on 0.5 µm/px ones
    val = ck["metrics"]["validation"]
    assert any(k.endswith("/tumor") for k in val) and any(k.endswith("/nucleus") for k in val)


def test_tissue_scale_options_are_checked():
    with pytest.raises(TrainConfigError, match="tissue_mpp"):
        TrainConfig(tissue_mpp=0)
    with pytest.raises(TrainConfigError, match="tissue_scale_prob"):
        TrainConfig(tissue_mpp=1.0, tissue_scale_prob=1.5)


def test_kather_mosaic_grid_follows_the_crop(tmp_path):
    """grid=None: as many tiles per side as fit the crop at the source's µm/px (at least 2);
    grid=2: the 2×2 mosaics of the shipped recipe."""
    from PIL import Image

    from pathxai.segment import data as D

    (tmp_path / "tiles").mkdir()
    rows = []
    for k, cls in enumerate(["01_TUMOR", "02_STROMA", "07_ADIPOSE", "08_EMPTY"]):
        Image.fromarray(np.full((150, 150, 3), 40 * k + 20, np.uint8)).save(
            tmp_path / "tiles" / f"t{k}.png")
        rows.append(f"tiles/t{k}.png,{cls},0.495")
    (tmp_path / "labels.csv").write_text("file,class,mpp\n" + "\n".join(rows) + "\n")
    rng = np.random.default_rng(0)

    def borders(src, crop, n=12):
        """Columns where the middle row's colour changes (tile borders), over n samples."""
        cols = set()
        for _ in range(n):
            s = src.sample(rng, crop)
            assert s.image.shape == (crop, crop, 3)
            row = s.image[crop // 2, :, 0].astype(int)
            cols.update(np.flatnonzero(np.abs(np.diff(row)) > 10).tolist())
        return np.array(sorted(cols))

    coarse = borders(D.KatherMosaicSource(tmp_path, mpp=1.0, grid=None), 384)  # 74-px tiles
    step = 384 / 5          # 5 × 5 tiles fill the 384-px crop at about their own µm/px
    near = np.abs(coarse[:, None] + 0.5 - step * np.arange(1, 5)[None]).min(1)
    assert coarse.size and near.max() <= 2 and len({int(round(c / step)) for c in coarse}) >= 3
    fine = borders(D.KatherMosaicSource(tmp_path, mpp=0.5, grid=2), 256)      # 2 × 2
    assert fine.size and np.abs(fine + 0.5 - 128).max() <= 2
    with pytest.raises(ValueError, match="grid"):
        D.KatherMosaicSource(tmp_path, mpp=0.5, grid=0)


def test_wide_batches_use_their_crop_size_sources_and_batch_size(tmp_path, monkeypatch):
    """wide_prob of the steps train on wide_batch_size crops of wide_crop px from
    wide_sources; the other steps are unchanged."""
    from pathxai.segment import train as T

    batches = []
    real = T._make_batch

    def spy(samples, *a, **k):
        batches.append([(s.source, s.image.shape[:2]) for s in samples])
        return real(samples, *a, **k)

    monkeypatch.setattr(T, "_make_batch", spy)
    cfg = TrainConfig(name="w", total_steps=8, warmup_steps=1, batch_size=3, crop=64,
                      out_dir=str(tmp_path / "run"), val_synthetic=1, labels_per_sample=2,
                      sources={"synthetic": 1.0}, wide_crop=96, wide_prob=0.5,
                      wide_batch_size=2, wide_sources={"synthetic": 1.0})
    train(cfg, log=lambda s: None)
    wide = [b for b in batches if b[0][1] == (96, 96)]
    normal = [b for b in batches if b[0][1] == (64, 64)]
    assert wide and normal and len(wide) + len(normal) == 8
    assert all(len(b) == 2 and all(sh == (96, 96) for _, sh in b) for b in wide)
    assert all(len(b) == 3 and all(sh == (64, 64) for _, sh in b) for b in normal)


def test_wide_batch_options_are_checked():
    with pytest.raises(TrainConfigError, match="wide_crop"):
        TrainConfig(wide_prob=0.3)
    with pytest.raises(TrainConfigError, match="wide_prob"):
        TrainConfig(wide_crop=512, wide_prob=2)
    with pytest.raises(TrainConfigError, match="wide_crop"):
        TrainConfig(wide_crop=8, wide_prob=0.5)
    with pytest.raises(TrainConfigError, match="wide_batch_size"):
        TrainConfig(wide_crop=512, wide_prob=0.5, wide_batch_size=0)
    with pytest.raises(TrainConfigError, match="wide_sources"):
        TrainConfig(wide_crop=512, wide_prob=0.5, wide_sources={"glas": 0})


def test_unset_wide_options_leave_the_sampling_unchanged(tmp_path, monkeypatch):
    """wide_prob = 0 draws no extra random numbers: the batches equal those of a config
    without the options."""
    from pathxai.segment import train as T

    real = T._make_batch

    def run(**extra):
        seen = []

        def spy(samples, *a, **k):
            seen.append([s.image.copy() for s in samples])
            return real(samples, *a, **k)

        monkeypatch.setattr(T, "_make_batch", spy)
        cfg = TrainConfig(name="u", total_steps=2, warmup_steps=1, batch_size=2, crop=64,
                          out_dir=str(tmp_path / f"run{len(extra)}"), val_synthetic=1,
                          labels_per_sample=2, sources={"synthetic": 1.0}, **extra)
        train(cfg, log=lambda s: None)
        return seen

    a, b = run(), run(wide_crop=96, wide_prob=0.0)
    assert len(a) == len(b) == 2
    for x, y in zip(a, b):
        for i, j in zip(x, y):
            np.testing.assert_array_equal(i, j)


def test_single_task_comparison_counts_the_shipped_checkpoints_steps(monkeypatch):
    """analyses/single_task_unet_comparison.py reports the multi-task budget in optimizer
    steps: phases that start fresh add their steps, ``long`` continues phase 1's counter and
    averages of weights add none."""
    import importlib.util
    from pathlib import Path

    import pathxai.segment as seg_pkg

    pkg = Path(seg_pkg.__file__).parent
    path = pkg.parents[1] / "analyses" / "single_task_unet_comparison.py"
    spec = importlib.util.spec_from_file_location("single_task_unet_comparison", path)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)   # its dataclasses look themselves up
    spec.loader.exec_module(mod)
    training = json.loads((pkg / "weights" / "default" / "config.json").read_text())["training"]
    phases = training["phases"]
    fresh = [ph["end_step"] for ph in phases if "end_step" in ph and not ph["run"].endswith("long")]
    expected = sum(fresh) + sum(ph["end_step"] - prev["end_step"]
                                for prev, ph in zip(phases, phases[1:]) if ph["run"].endswith("long"))
    assert mod._phase_steps(training) == expected
    assert mod._phase_steps({"phases": [
        {"run": "a", "end_step": 100}, {"run": "a_long", "end_step": 250},
        {"run": "b", "end_step": 40}, {"average_of": ["x", "y"], "run": "c", "minutes": 0.0}]}) == 290
    assert mod._phase_steps({"step": 7}) == 7


def test_documented_experiment_configs_still_parse():
    """analyses/configs/*.yaml are the documented experiments (README, model card): each must
    still load with the current TrainConfig, so their commands can be rerun."""
    from pathlib import Path

    import pathxai.segment as seg_pkg

    folder = Path(seg_pkg.__file__).parents[2] / "analyses" / "configs"
    paths = sorted(folder.glob("*.yaml"))
    assert len(paths) >= 5, paths
    for p in paths:
        cfg = TrainConfig.from_yaml(p)
        assert cfg.out_dir.startswith("training_runs/"), (p.name, cfg.out_dir)
