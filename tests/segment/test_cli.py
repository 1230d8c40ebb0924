"""``pathxai segment`` / ``evaluate`` / ``train`` end to end."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from PIL import Image

from pathxai.cli import main


def test_segment_real_image(shared_data, tmp_path, capsys):
    image = shared_data / "cpm15" / "images" / "image06.jpg"
    out = tmp_path / "masks"
    rc = main(["segment", str(image), "--prompt", "nuclei", "--prompt", "tissue",
               "--prompt", "fat", "--prompt", "Nuclei.", "--mpp", "0.5", "--model", "stain",
               "--out", str(out)])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert [s["label"] for s in summary] == ["nucleus", "tissue", "adipose tissue"]  # deduplicated
    nuc = summary[0]
    mask = np.asarray(Image.open(out / "nucleus.png"))
    inst = np.asarray(Image.open(out / "nucleus.instances.png"))
    w, h = Image.open(image).size
    assert mask.shape == (h, w) and set(np.unique(mask)) <= {0, 255}
    assert inst.dtype == np.uint16 and len(np.unique(inst[inst > 0])) == nuc["n_objects"] > 50
    assert nuc["area_fraction"] == np.mean(mask > 0)
    assert nuc["canonical"] == "nuclei-level nucleus in unspecified pathology"
    assert not (out / "tissue.instances.png").exists()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["mpp"] == 0.5 and meta["labels"][0] == "nucleus"


def test_segment_errors(shared_data, tmp_path, capsys):
    image = shared_data / "cpm15" / "images" / "image06.jpg"
    assert main(["segment", str(image), "--prompt", "banana", "--model", "stain",
                 "--out", str(tmp_path)]) == 2
    assert "Closest labels" in capsys.readouterr().err
    assert main(["segment", str(image), "--prompt", "mucin", "--mpp", "0.5", "--model", "stain",
                 "--out", str(tmp_path)]) == 2
    assert "cannot segment 'mucus'" in capsys.readouterr().err
    assert main(["segment", str(tmp_path / "none.png"), "--prompt", "x", "--out",
                 str(tmp_path)]) == 2


def test_evaluate_cli(shared_data, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    rc = main(["evaluate", "--index", str(shared_data / "index.csv"), "--dataset", "kather2016",
               "--baseline", "stain", "--no-absent", "--n-boot", "50", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "adipose tissue" in text and "unsupported" in text
    res = json.loads(out.read_text())
    assert {r["category"] for r in res["summary"]} == {
        "adipose tissue", "debris", "lymphocytic infiltrate", "normal mucosa", "stroma",
        "tumor epithelium"}
    assert len(res["rows"]) == 12


def test_train_cli_dispatches_to_train_from_config(tmp_path, capsys, monkeypatch):
    if importlib.util.find_spec("pathxai.segment.train") is None:
        assert main(["train", str(tmp_path / "cfg.yaml")]) == 2
        assert "pathxai.segment.train" in capsys.readouterr().err
        return
    import pathxai.segment.train as train_mod

    calls = []
    monkeypatch.setattr(train_mod, "train_from_config",
                        lambda path, **kw: calls.append(path) or {"checkpoint": "x"})
    assert main(["train", str(tmp_path / "cfg.yaml")]) == 0
    assert calls == [str(tmp_path / "cfg.yaml")]
    assert json.loads(capsys.readouterr().out) == {"checkpoint": "x"}
    monkeypatch.setattr(train_mod, "train_from_config",
                        lambda path, **kw: calls.append(kw) or {"checkpoint": "x"})
    assert main(["train", "c.yaml", "--resume", "--max-minutes", "2"]) == 0
    assert calls[-1] == {"resume": True, "max_minutes": 2.0}


@pytest.mark.slow
def test_segment_whole_slide_with_stain(shared_slides, tmp_path, capsys):
    if importlib.util.find_spec("pathxai.segment.slide") is None:
        pytest.skip("pathxai.segment.slide (slide streamer) is not in this build")
    out = tmp_path / "slide"
    rc = main(["segment", str(shared_slides / "cmu-1-small-region.svs"), "--prompt", "nuclei",
               "--model", "stain", "--out", str(out)])
    assert rc == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["results"]["nucleus"]["n_objects"] > 100
    assert (out / "nucleus.png").is_file() and (out / "meta.json").is_file()
    mask = np.asarray(Image.open(out / "nucleus.png"))
    # the slide is 2220 x 2967 px at 0.499 µm/px; masks are written at the predictor's 0.5
    assert abs(mask.shape[0] - 2967 * 0.499 / 0.5) <= 2 and abs(mask.shape[1] - 2220 * 0.499 / 0.5) <= 2


def test_segment_tta_runs_the_model_and_is_refused_for_the_stain_baseline(tmp_path, capsys):
    image = tmp_path / "tile.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(image)
    assert main(["segment", str(image), "--prompt", "tumour", "--mpp", "0.5", "--model", "stain",
                 "--tta", "--out", str(tmp_path / "s")]) == 2
    assert "--tta applies to a model" in capsys.readouterr().err
    assert main(["segment", str(image), "--prompt", "tumour", "--prompt", "nuclei", "--mpp",
                 "0.5", "--tta", "--out", str(tmp_path / "m")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [s["label"] for s in summary] == ["tumor", "nucleus"]
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert "test_time_augmentation" in json.dumps(meta)
    assert main(["segment", str(image), "--prompt", "tumour", "--mpp", "0.5", "--tta", "tissue",
                 "--out", str(tmp_path / "t")]) == 0
    capsys.readouterr()
    meta = json.loads((tmp_path / "t" / "meta.json").read_text())
    assert "for tissue-level prompts" in json.dumps(meta)
    with pytest.raises(SystemExit):
        main(["segment", str(image), "--prompt", "tumour", "--tta", "flips", "--out",
              str(tmp_path / "x")])
    assert "invalid choice: 'flips'" in capsys.readouterr().err
