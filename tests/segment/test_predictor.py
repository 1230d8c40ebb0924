"""Segmentor predictor: one encoding for many prompts, presence gating, resampling, unions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pathxai.exceptions import UnknownPromptError, UnsupportedPromptError
from pathxai.segment.build import default_config, resolve_checkpoint_dir
from pathxai.segment.modeling import ModelConfig, PromptSegmentationModel
from pathxai.segment.postprocess import instances_from_maps
from pathxai.segment.predictor import Segmentor

TRAINED = ["nucleus", "lymphocyte", "inflammatory cell", "tumor", "stroma", "gland",
           "neoplastic cell"]


@pytest.fixture(scope="module")
def segmentor() -> Segmentor:
    torch.manual_seed(0)
    cfg = default_config("tiny")
    cfg["trained_labels"] = TRAINED
    model = PromptSegmentationModel(ModelConfig(
        vocab_size=len(cfg["vocabulary"]), enc_channels=(8, 8, 16, 16, 16),
        dec_dims=(8, 8, 8, 16, 16), embed_dim=8, dim=16, heads=2, text_depth=1,
        fusion_depth=1, num_queries=4))
    return Segmentor(model, cfg, device="cpu", max_side=512)


def _image(h=100, w=150, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_set_image_encodes_once_for_many_prompts(segmentor):
    n0 = segmentor.n_encoder_calls
    segmentor.set_image(_image(), mpp=0.5)
    r1 = segmentor.predict(["nuclei", "tumour", "stroma", "glands", "lymphocytes"])
    r2 = segmentor.predict(["neoplastic cells"])
    assert segmentor.n_encoder_calls - n0 == 1
    assert len(r1) == 5 and len(r2) == 1


def test_masks_come_back_on_the_input_grid(segmentor):
    img = _image(90, 130)
    segmentor.set_image(img, mpp=0.25)  # finer than the model: resampled by 0.5
    (r,) = segmentor.predict(["nucleus"])
    assert r.mask.shape == (90, 130) and r.probability.shape == (90, 130)
    assert r.instances is not None and r.instances.shape == (90, 130)
    assert 0.0 <= r.presence <= 1.0
    assert r.extra["model_mpp"] == 0.5 and r.extra["image_mpp"] == 0.25


def test_presence_gates_the_mask(segmentor):
    heads = segmentor.model.heads
    mb, pb = heads.mask_bias[-1].bias, heads.presence[-1].bias
    saved = mb.data.clone(), pb.data.clone()
    try:
        mb.data[0] = 60.0   # every pixel probability ~ 1
        pb.data[0] = 60.0   # present
        segmentor._text_cache.clear()
        segmentor.set_image(_image(), mpp=0.5)
        (full,) = segmentor.predict(["tumor"])
        assert full.presence > 0.99 and full.mask.all()
        pb.data[0] = -60.0  # absent: the mask must be empty although pixels say 1
        (empty,) = segmentor.predict(["tumor"])
        assert empty.presence < 0.01 and not empty.mask.any()
        assert empty.probability.min() > 0.99
        assert empty.area_fraction == 0.0
    finally:
        mb.data, pb.data = saved


def test_group_prompt_is_the_union_of_trained_labels(segmentor):
    segmentor.set_image(_image(), mpp=0.5)
    inf, lym, own = segmentor.predict(["inflammatory cells", "lymphocyte",
                                       "cell-level inflammatory cell"])
    assert inf.extra["answered_by"] == ["inflammatory cell", "lymphocyte"]
    np.testing.assert_allclose(inf.probability,
                               np.maximum(lym.probability, own.probability), atol=1e-6)


def test_unknown_and_untrained_prompts_raise(segmentor):
    segmentor.set_image(_image(), mpp=0.5)
    with pytest.raises(UnknownPromptError):
        segmentor.predict(["flux capacitor"])
    with pytest.raises(UnsupportedPromptError, match="plasma cell"):
        segmentor.predict(["plasma cells"])


def test_missing_mpp_and_bad_image_are_reported(segmentor):
    from pathxai.exceptions import MissingMPPError

    with pytest.raises(MissingMPPError):
        segmentor.set_image(_image(), mpp=None)
    with pytest.raises(ValueError, match="shape"):
        segmentor.set_image(np.zeros((10, 10)), mpp=0.5)


def test_large_images_are_tiled_and_blended(segmentor):
    old = segmentor.max_side
    segmentor.max_side = 64
    try:
        n0 = segmentor.n_encoder_calls
        img = _image(300, 700)
        segmentor.set_image(img, mpp=0.5)
        tiles = sum(len(b) for b in segmentor._encoded.boxes)
        assert tiles > 1
        (r,) = segmentor.predict(["stroma"])
        assert r.mask.shape == (300, 700)
        assert segmentor.n_encoder_calls - n0 == len(segmentor._encoded.boxes)
    finally:
        segmentor.max_side = old


def test_predict_batch_matches_predict(segmentor):
    imgs = [_image(64, 64, s) for s in range(3)]
    batch = segmentor.predict_batch(imgs, ["nucleus", "tumor"], mpp=0.5)
    segmentor.set_image(imgs[1], mpp=0.5)
    single = segmentor.predict(["nucleus", "tumor"])
    for a, b in zip(batch[1], single):
        np.testing.assert_allclose(a.probability, b.probability, atol=1e-4)


@pytest.mark.parametrize("tta", [False, "all", "tissue"])
def test_lazy_maps_equal_the_batched_maps(segmentor, tta):
    """predict_batch's maps upsampled row by row in the post-processing jobs (lazy) equal the
    batched upsampling: probabilities, distances (cell/nucleus queries only, identity view
    under tta="tissue") and presences, cropped to the unpadded tile."""
    seg = Segmentor(segmentor.model, segmentor.config, device="cpu", tta=tta)
    queries, _ = seg._queries(seg.ontology.parse_many(["tumor", "nuclei", "stroma",
                                                       "lymphocytes"]))
    batch = np.stack([_image(64, 96, s) for s in range(3)])
    state = seg._encode_batch(batch, seg._views_for(queries))
    prob, dist, pres = seg._maps_for_state(state, 3, queries)
    # query 3 ("lymphocytes", a cell label: distance row 1) is read by two prompts
    lprob, ldist, lpres = seg._maps_for_state(state, 3, queries, lazy_crop=(60, 90),
                                              shared=frozenset({3}))
    np.testing.assert_array_equal(lpres, pres)
    assert len(lprob) == len(ldist) == 3 and len(lprob[0]) == 4 and len(ldist[0]) == 2
    for k in range(3):
        for j in range(4):
            np.testing.assert_array_equal(lprob[k][j], prob[k, j, :60, :90])
        for j in range(2):
            np.testing.assert_array_equal(ldist[k][j], dist[k, j, :60, :90])
        # a shared row is upsampled once and then handed out again; the others each time
        assert lprob[k][3] is lprob[k][3] and ldist[k][1] is ldist[k][1]
        assert lprob[k][0] is not lprob[k][0] and ldist[k][0] is not ldist[k][0]


def test_prompts_sharing_a_label_match_single_prompts(segmentor):
    """Two prompts answered by the same label ("lymphocytes" and the parent "inflammatory
    cells" both read the lymphocyte map) give the answers each prompt gets alone."""
    imgs = [_image(64, 64, s) for s in range(2)]
    both = segmentor.predict_batch(imgs, ["lymphocytes", "inflammatory cells"], mpp=0.5)
    for p, col in (("lymphocytes", 0), ("inflammatory cells", 1)):
        alone = segmentor.predict_batch(imgs, [p], mpp=0.5)
        for k in range(2):
            a, b = both[k][col], alone[k][0]
            np.testing.assert_array_equal(a.probability, b.probability)
            np.testing.assert_array_equal(a.instances, b.instances)
            assert a.extra["answered_by"] == b.extra["answered_by"]
    assert "lymphocyte" in both[0][1].extra["answered_by"]   # the label is shared


def test_watershed_splits_touching_discs():
    from scipy import ndimage

    yy, xx = np.mgrid[:40, :60]
    a = (yy - 20) ** 2 + (xx - 20) ** 2 < 100
    b = (yy - 20) ** 2 + (xx - 36) ** 2 < 100   # overlaps a: one connected blob
    c = (yy - 5) ** 2 + (xx - 55) ** 2 < 9      # separate small object
    mask = a | b | c
    assert ndimage.label(mask)[1] == 2
    truth = np.zeros(mask.shape, int)
    truth[a] = 1
    truth[b & ~a] = 2
    truth[c] = 3
    # exact normalised distance maps of the true objects (what the head is trained on)
    dist = np.zeros(mask.shape)
    for k in (1, 2, 3):
        d = ndimage.distance_transform_edt(truth == k)
        dist[truth == k] = d[truth == k] / d.max()
    lab = instances_from_maps(mask, dist, mpp=0.5, min_area_um2=1.0)
    assert lab.max() == 3
    assert set(np.unique(lab[c])) == {lab[5, 55]}
    assert lab[20, 14] != lab[20, 42]


def test_instances_equal_a_full_watershed_partition():
    # only components with >= 2 cores are flooded; the objects must be those of a plain
    # marker watershed over the whole mask (same partition, labels may be numbered apart;
    # on exact plateaus the two may break ties differently, both valid watersheds)
    from scipy import ndimage
    from skimage.segmentation import watershed

    rng = np.random.default_rng(3)
    for _ in range(5):
        mask = ndimage.gaussian_filter(rng.random((96, 96)), 3) > 0.52
        dist = ndimage.distance_transform_edt(mask)
        # tiny jitter: no plateaus, so the flooding does not depend on tie-breaking order
        dist = dist / max(dist.max(), 1) + rng.random(mask.shape) * 1e-6
        lab = instances_from_maps(mask, dist, mpp=0.5, min_area_um2=0.0, min_core_um2=0.0)
        cores, _ = ndimage.label(mask & (dist > 0.45))
        ref = watershed(-dist, cores, mask=mask)
        rest, n_rest = ndimage.label(mask & (ref == 0))
        ref = np.where(rest > 0, rest + ref.max(), ref)
        assert np.array_equal(lab > 0, ref > 0)
        pairs = np.unique(np.stack([lab[mask], ref[mask]]), axis=1)
        assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]
        assert lab.max() == len(np.unique(ref[ref > 0]))


def test_default_checkpoint_loads():
    try:
        d = resolve_checkpoint_dir("default")
    except Exception:
        pytest.skip("no shipped checkpoint in pathxai/segment/weights/default yet")
    seg = Segmentor.from_pretrained("default", device="cpu")
    assert seg.mpp > 0 and len(seg.trained_labels) >= 10
    assert (d / "model.safetensors").stat().st_size <= 20 * 1024 * 1024
    seg.set_image(_image(64, 64), mpp=seg.mpp)
    (r,) = seg.predict(["nuclei"])
    assert r.mask.shape == (64, 64)


def test_remove_small_holes_fills_only_small_enclosed_holes():
    from pathxai.segment.postprocess import remove_small_holes

    mask = np.ones((40, 40), bool)
    mask[5:8, 5:8] = False        # 9-px enclosed hole: filled
    mask[15:30, 15:30] = False    # 225-px enclosed hole: kept
    mask[0:3, 20:23] = False      # small, but open to the border: kept
    out = remove_small_holes(mask, max_size=20)
    assert out[5:8, 5:8].all()
    assert not out[15:30, 15:30].any()
    assert not out[0:3, 20:23].any()
    assert out.sum() == mask.sum() + 9
    assert remove_small_holes(mask, max_size=0).sum() == mask.sum()


def test_segmentor_records_postprocess_settings():
    try:
        resolve_checkpoint_dir("default")
    except Exception:
        pytest.skip("no shipped checkpoint")
    seg = Segmentor.from_pretrained("default", device="cpu", min_hole_um2=0)
    assert seg.postprocess["min_hole_um2"] == 0
    assert Segmentor.from_pretrained("default", device="cpu").postprocess["min_hole_um2"] == 400
    with pytest.raises(ValueError, match="min_hole_um2"):
        Segmentor.from_pretrained("default", device="cpu", min_hole_um2=-1)


def test_close_gaps_closes_narrow_gaps_only_and_not_from_the_border():
    from pathxai.segment.postprocess import close_gaps

    mask = np.zeros((60, 60), bool)
    mask[10:50, 5:25] = True
    mask[10:50, 29:55] = True        # 4-px gap between two blocks: closed with radius 3
    mask[0:2, 0:60] = True           # a band on the border, 8 px above the blocks
    out = close_gaps(mask, radius=3)
    assert out[20:40, 25:29].all()
    assert (out | ~mask).all()       # never removes mask pixels
    assert out[0:2].all() and not out[3:8, 30:40].any()
    wide = mask.copy()
    wide[:, 22:32] = False           # 10-px gap: stays open with radius 3
    assert not close_gaps(wide, radius=3)[20:40, 24:30].any()


def test_close_gaps_coarse_grid_is_conservative_and_still_bridges_gaps():
    from scipy import ndimage

    from pathxai.segment.postprocess import close_gaps

    rng = np.random.default_rng(0)
    for _ in range(5):   # blobby masks: smoothed noise thresholded
        noise = ndimage.gaussian_filter(rng.normal(size=(256, 256)), 6)
        mask = noise > np.quantile(noise, 0.55)
        exact = close_gaps(mask, radius=12, coarse_px=np.inf)
        coarse = close_gaps(mask, radius=12)
        assert (coarse >= mask).all()
        # only pixels the exact closing adds (one pixel of discretisation slack)
        assert not (coarse & ~ndimage.binary_dilation(exact)).any()
        added_exact, added_coarse = (exact & ~mask).sum(), (coarse & ~mask).sum()
        assert added_coarse >= 0.75 * added_exact
    bars = np.zeros((120, 120), bool)
    bars[20:100, 10:50] = True
    bars[20:100, 58:110] = True      # 8-px gap: bridged at radius 12 on the 2x coarser grid
    out = close_gaps(bars, radius=12)
    assert out[40:80, 50:58].all()
    wide = np.zeros_like(bars)
    wide[20:100, 10:40] = True
    wide[20:100, 80:110] = True      # 40-px gap: stays open
    assert not close_gaps(wide, radius=12)[30:90, 45:75].any()


def test_tissue_prompts_are_answered_on_the_tissue_grid(segmentor):
    """With ``tissue_mpp`` in the config, tissue-level prompts are encoded and decoded at that
    coarser µm/px (one encoding per grid, reused), cell/nucleus prompts at ``mpp``; every
    result comes back on the input grid."""
    cfg = dict(segmentor.config, tissue_mpp=1.0)
    two = Segmentor(segmentor.model, cfg, device="cpu", max_side=512)
    img = _image(128, 192)
    two.set_image(img, mpp=0.5)
    assert two.n_encoder_calls == 0  # encodings are made on first use, per grid
    tum, nuc = two.predict(["tumour", "nuclei"])
    assert two.n_encoder_calls == 2
    assert tum.extra["model_mpp"] == 1.0 and nuc.extra["model_mpp"] == 0.5
    assert tum.mask.shape == nuc.mask.shape == (128, 192)
    assert nuc.instances is not None and tum.instances is None
    two.predict(["stroma", "lymphocytes", "glands"])
    assert two.n_encoder_calls == 2
    # the tissue answer is the single-grid model's answer on the image resampled to
    # 1.0 µm/px (given to it as its own µm/px, so not resampled again), brought back up
    from pathxai.segment.predictor import _resize_float, resample_rgb

    one = Segmentor(segmentor.model, segmentor.config, device="cpu", max_side=512)
    one.set_image(resample_rgb(img, 0.5), mpp=0.5)
    (ref,) = one.predict(["tumour"])
    assert ref.probability.shape == (64, 96)
    np.testing.assert_allclose(tum.probability, _resize_float(ref.probability, (128, 192)),
                               atol=1e-5)
    assert two.postprocess["tissue_mpp"] == 1.0


def test_predict_batch_matches_predict_on_two_grids(segmentor):
    cfg = dict(segmentor.config, tissue_mpp=1.0)
    two = Segmentor(segmentor.model, cfg, device="cpu", max_side=512)
    imgs = [_image(96, 96, s) for s in range(3)]
    n0 = two.n_encoder_calls
    batch = two.predict_batch(imgs, ["nucleus", "tumor", "stroma"], mpp=0.5)
    assert two.n_encoder_calls - n0 == 2   # one batch, two grids
    two.set_image(imgs[2], mpp=0.5)
    single = two.predict(["nucleus", "tumor", "stroma"])
    for a, b in zip(batch[2], single):
        assert a.extra["model_mpp"] == b.extra["model_mpp"]
        np.testing.assert_allclose(a.probability, b.probability, atol=1e-4)
        np.testing.assert_array_equal(a.mask, b.mask)


def test_test_time_augmentation_averages_the_flipped_views(segmentor):
    """tta=True: one encoder call per batch for all 4 views; the maps equal the mean of the
    plain model's answers on the flipped images, flipped back."""
    tta = Segmentor(segmentor.model, segmentor.config, device="cpu", max_side=512, tta=True)
    img = _image(64, 96, seed=3)     # multiples of 32: no padding, so views are exact flips
    tta.set_image(img, mpp=0.5)
    n0 = tta.n_encoder_calls
    t_res, n_res = tta.predict(["tumor", "nucleus"])
    assert tta.n_encoder_calls - n0 == 1
    probs, pres = [], []
    for flip in ((), (1,), (0,), (0, 1)):
        view = np.flip(img, flip).copy() if flip else img
        segmentor.set_image(view, mpp=0.5)
        (r,) = segmentor.predict(["tumor"])
        probs.append(np.flip(r.probability, flip) if flip else r.probability)
        pres.append(r.presence)
    np.testing.assert_allclose(t_res.probability, np.mean(probs, 0), atol=1e-5)
    assert t_res.presence == pytest.approx(float(np.mean(pres)), abs=1e-5)
    assert n_res.instances is not None and n_res.instances.shape == (64, 96)
    assert tta.postprocess["test_time_augmentation"] and not segmentor.postprocess[
        "test_time_augmentation"]


def test_tissue_only_test_time_augmentation(segmentor):
    """tta="tissue": tissue-level prompts get the 4-view mean (as tta=True), cell and nucleus
    prompts the identity view only (as without TTA), on one encoder call; bad modes refused."""
    kw = dict(device="cpu", max_side=512, presence_threshold=0.0)
    plain, full, tissue = (Segmentor(segmentor.model, segmentor.config, tta=t, **kw)
                           for t in (False, "all", "tissue"))
    assert (plain.tta, full.tta, tissue.tta) == (False, True, True)
    assert "tissue-level prompts" in tissue.postprocess["test_time_augmentation"]
    img = _image(64, 96, seed=5)
    prompts = ["tumor", "nucleus", "stroma", "lymphocytes"]
    answers = {}
    for name, seg in (("plain", plain), ("full", full), ("tissue", tissue)):
        seg.set_image(img, mpp=0.5)
        n0 = seg.n_encoder_calls
        answers[name] = seg.predict(prompts)
        assert seg.n_encoder_calls - n0 == 1
    for k, p in enumerate(prompts):
        ref = answers["full" if p in ("tumor", "stroma") else "plain"][k]
        other = answers["plain" if p in ("tumor", "stroma") else "full"][k]
        got = answers["tissue"][k]
        np.testing.assert_allclose(got.probability, ref.probability, atol=1e-6)
        assert got.presence == pytest.approx(ref.presence, abs=1e-6)
        np.testing.assert_array_equal(got.mask, ref.mask)
        assert np.abs(got.probability - other.probability).max() > 1e-4   # the modes differ
        if ref.instances is not None:
            np.testing.assert_array_equal(got.instances, ref.instances)
    for bad in ("flips", 2, "yes"):
        with pytest.raises(ValueError, match="tta="):
            Segmentor(segmentor.model, segmentor.config, device="cpu", tta=bad)


def test_tissue_tta_encodes_flipped_views_only_for_tissue_prompts(segmentor):
    """tta="tissue" with cell/nucleus prompts only encodes the identity view (no 4x encoder
    cost for answers that use one view); a later tissue prompt on the same image re-encodes
    with the 4 views, a later cell prompt reuses them; answers equal the unflipped model's
    and, for the tissue prompt, the full-TTA model's; predict_batch follows the same rule."""
    kw = dict(device="cpu", max_side=512, presence_threshold=0.0)
    plain, full, tissue = (Segmentor(segmentor.model, segmentor.config, tta=t, **kw)
                           for t in (False, "all", "tissue"))
    img = _image(64, 96, seed=9)
    for seg in (plain, full, tissue):
        seg.set_image(img, mpp=0.5)
    n0 = tissue.n_encoded_images
    (nuc,) = tissue.predict(["nuclei"])
    assert tissue.n_encoded_images - n0 == 1
    (ref,) = plain.predict(["nuclei"])
    np.testing.assert_array_equal(nuc.instances, ref.instances)
    np.testing.assert_allclose(nuc.probability, ref.probability, atol=1e-6)
    (tum,) = tissue.predict(["tumor"])   # needs the flipped views: encoded again, 4 images
    assert tissue.n_encoded_images - n0 == 1 + 4
    np.testing.assert_allclose(tum.probability, full.predict(["tumor"])[0].probability,
                               atol=1e-6)
    calls = tissue.n_encoder_calls
    (lym,) = tissue.predict(["lymphocytes"])   # served by the 4-view encoding
    assert tissue.n_encoder_calls == calls
    np.testing.assert_allclose(lym.probability, plain.predict(["lymphocytes"])[0].probability,
                               atol=1e-6)
    n1 = tissue.n_encoded_images
    tissue.predict_batch([_image(64, 64, 1), _image(64, 64, 2)], ["nuclei"], mpp=0.5)
    assert tissue.n_encoded_images - n1 == 2
    tissue.predict_batch([_image(64, 64, 1), _image(64, 64, 2)], ["tumor", "nuclei"], mpp=0.5)
    assert tissue.n_encoded_images - n1 == 2 + 8


def test_predict_batch_keeps_the_callers_image(segmentor):
    """Both predict_batch paths (batched, and per-image for mixed sizes) leave the image of the
    caller's last set_image current."""
    mine = _image(64, 64, seed=7)
    segmentor.set_image(mine, mpp=0.5)
    (before,) = segmentor.predict(["tumor"])
    segmentor.predict_batch([_image(64, 64, 1), _image(64, 64, 2)], ["tumor"], mpp=0.5)
    segmentor.predict_batch([_image(64, 64, 1), _image(96, 64, 2)], ["tumor"], mpp=0.5)
    (after,) = segmentor.predict(["tumor"])
    np.testing.assert_array_equal(before.probability, after.probability)


def test_predict_batch_resamples_images_at_another_mpp(segmentor):
    """Same-size images at 0.25 µm/px take the batched path on both grids (with TTA) and agree
    with predict on each image."""
    cfg = dict(segmentor.config, tissue_mpp=1.0)
    two = Segmentor(segmentor.model, cfg, device="cpu", max_side=512, tta=True)
    imgs = [_image(100, 140, s) for s in range(2)]
    batch = two.predict_batch(imgs, ["nucleus", "stroma"], mpp=0.25)
    two.set_image(imgs[1], mpp=0.25)
    single = two.predict(["nucleus", "stroma"])
    for a, b in zip(batch[1], single):
        assert a.mask.shape == (100, 140)
        np.testing.assert_allclose(a.probability, b.probability, atol=1e-4)
        np.testing.assert_array_equal(a.mask, b.mask)


def test_a_label_on_another_grid_is_answered_on_the_prompts_grid(segmentor):
    """A prompt is always answered on its own grid (cell/nucleus prompts at mpp), whatever
    else is asked in the same call, even when its label is decoded on the other grid."""
    cfg = dict(segmentor.config, tissue_mpp=1.0)
    two = Segmentor(segmentor.model, cfg, device="cpu", max_side=512)
    two.grid_mpp = lambda label: 1.0      # every label decoded on the coarse grid
    two.set_image(_image(96, 128), mpp=0.5)
    (alone,) = two.predict(["nucleus"])
    together = two.predict(["tumor", "nucleus"])[1]
    assert alone.extra["model_mpp"] == together.extra["model_mpp"] == 0.5
    np.testing.assert_allclose(alone.probability, together.probability, atol=1e-6)
    assert alone.instances is not None and alone.instances.shape == (96, 128)


def _worker_segmentor(segmentor, workers, mask_threshold=0.5, batch_size=2):
    return Segmentor(segmentor.model, segmentor.config, device="cpu", max_side=512,
                     presence_threshold=0.0, mask_threshold=mask_threshold,
                     batch_size=batch_size, postprocess_workers=workers)


def _blobby_maps(seg, monkeypatch):
    """Replace the network's maps by smooth random fields (about half above 0.5), drawn in
    call order, so that closing, hole filling and the watershed all have work to do."""
    from scipy import ndimage

    calls = iter(range(10_000))

    def maps(state, n_images, queries, lazy_crop=None, shared=frozenset()):   # eager maps
        rng = np.random.default_rng(next(calls))
        h, w = state.size
        f = ndimage.gaussian_filter(rng.random((2, n_images, len(queries), h, w)),
                                    (0, 0, 0, 6, 6))
        f = (f - f.mean()) / f.std() * 0.3 + 0.5
        dist = f[1][:, seg._instance_queries(queries)]   # cell/nucleus queries only
        return f[0].clip(0, 1), dist.clip(0, 1), np.full((n_images, len(queries)), 0.9)

    monkeypatch.setattr(seg, "_maps_for_state", maps)
    return seg


def test_postprocess_workers_do_not_change_results(segmentor, monkeypatch):
    """Masks, instances, probabilities and presences are the same whether the answers are
    post-processed inline or on a thread pool beside the network (several tile batches,
    region and instance prompts, partial masks)."""
    imgs = [_image(96, 96, s) for s in range(5)]
    prompts = ["tumor", "nuclei", "stroma", "lymphocytes", "gland"]
    inline = _blobby_maps(_worker_segmentor(segmentor, 0), monkeypatch).predict_batch(
        imgs, prompts, mpp=0.5)
    pooled_seg = _blobby_maps(_worker_segmentor(segmentor, 3), monkeypatch)
    pooled = pooled_seg.predict_batch(imgs, prompts, mpp=0.5)
    n_instances = n_partial = 0
    for row_a, row_b in zip(inline, pooled):
        for a, b in zip(row_a, row_b):
            n_partial += 0.05 < a.mask.mean() < 0.95
            np.testing.assert_array_equal(a.mask, b.mask)
            np.testing.assert_array_equal(a.probability, b.probability)
            assert a.presence == b.presence
            if a.instances is not None:
                np.testing.assert_array_equal(a.instances, b.instances)
                n_instances += int(a.instances.max())
    assert n_instances > 0 and n_partial >= len(imgs) * len(prompts) - 2
    seg0 = _blobby_maps(_worker_segmentor(segmentor, 0), monkeypatch)
    seg3 = _blobby_maps(_worker_segmentor(segmentor, 3), monkeypatch)
    for s in (seg0, seg3):
        s.set_image(imgs[2], mpp=0.5)
    for a, b in zip(seg0.predict(prompts), seg3.predict(prompts)):
        np.testing.assert_array_equal(a.mask, b.mask)
        assert 0.05 < a.mask.mean() < 0.95


def test_distance_maps_only_for_cell_and_nucleus_queries(segmentor):
    """Region queries carry no distance map (memory and blending cost): the maps of a
    mixed query list hold one distance channel per cell/nucleus query, and instance prompts
    still get instances on the single-pass and the tiled path."""
    queries, _ = segmentor._queries(segmentor.ontology.parse_many(
        ["tumor", "nuclei", "stroma", "lymphocytes"]))
    inst_q = segmentor._instance_queries(queries)
    assert [queries[k][0] for k in inst_q] == ["nucleus", "lymphocyte"]
    segmentor.set_image(_image(64, 64), mpp=0.5)
    enc = segmentor._encoded
    prob, dist, pres = segmentor._maps_for_state(enc.states[0], 1, queries)
    assert prob.shape[:2] == (1, 4) and dist.shape[:2] == (1, 2) and pres.shape == (1, 4)
    _, dist, _ = segmentor._maps_for_state(enc.states[0], 1, queries[:1])
    assert dist.shape[1] == 0
    seg = Segmentor(segmentor.model, segmentor.config, device="cpu", max_side=64,
                    presence_threshold=0.0, mask_threshold=0.0)
    for side in (48, 700):   # one pass; overlapping tiles (2 x tile_size = 512 px each)
        seg.set_image(_image(side, side, 3), mpp=0.5)
        tumor, nuclei = seg.predict(["tumor", "nuclei"])
        assert len(seg._encoded.boxes[0]) == (1 if side == 48 else 4)
        assert tumor.instances is None
        assert nuclei.instances is not None and nuclei.instances.shape == (side, side)
        np.testing.assert_array_equal(nuclei.mask, nuclei.instances > 0)


def test_postprocess_errors_reach_the_caller(segmentor, monkeypatch):
    import pathxai.segment.predictor as predictor_module

    def broken(*args, **kwargs):
        raise FloatingPointError("watershed failed")

    monkeypatch.setattr(predictor_module, "instances_from_maps", broken)
    seg = _worker_segmentor(segmentor, 2)
    with pytest.raises(FloatingPointError, match="watershed failed"):
        seg.predict_batch([_image(64, 64, s) for s in range(4)], ["tumor", "nuclei"], mpp=0.5)
    seg.set_image(_image(64, 64), mpp=0.5)
    with pytest.raises(FloatingPointError, match="watershed failed"):
        seg.predict(["tumor", "nuclei"])


def test_a_postprocess_error_stops_predict_batch_early(segmentor, monkeypatch):
    """An error in one answer stops the batch loop within two tile batches (not after every
    batch), inline and on the pool."""
    import pathxai.segment.predictor as predictor_module

    def broken(*args, **kwargs):
        raise FloatingPointError("watershed failed")

    monkeypatch.setattr(predictor_module, "instances_from_maps", broken)
    for workers in (0, 2):
        seg = _worker_segmentor(segmentor, workers, batch_size=2)
        with pytest.raises(FloatingPointError):
            seg.predict_batch([_image(48, 48, s) for s in range(20)], ["nuclei"], mpp=0.5)
        assert seg.n_encoder_calls <= 3, (workers, seg.n_encoder_calls)


def test_drain_shares_the_tail_stops_on_a_worker_error_and_runs_each_job_once():
    """_drain: results in order; the caller takes unstarted jobs from the back; when a
    worker's job fails, the caller stops taking jobs and the first failure in order is
    raised; a job the caller ran and that raised is not run again by result()."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from pathxai.segment.predictor import _drain, _Job

    runs: dict[int, list[str]] = {}
    lock = threading.Lock()

    def job(k, fail_at=None, delay=0.002):
        with lock:
            runs.setdefault(k, []).append(threading.current_thread().name)
        time.sleep(delay)
        if k == fail_at:
            raise ValueError(f"job {k}")
        return k * k

    with ThreadPoolExecutor(1, thread_name_prefix="w") as ex:
        jobs = [_Job(ex, job, k) for k in range(30)]
        assert _drain(jobs) == [k * k for k in range(30)]
    assert all(len(v) == 1 for v in runs.values()) and len(runs) == 30
    callers = [k for k, v in runs.items() if not v[0].startswith("w")]
    assert callers and max(callers) == 29   # the caller worked from the back
    runs.clear()
    with ThreadPoolExecutor(1, thread_name_prefix="w") as ex:
        gate = threading.Event()
        first = _Job(ex, lambda: (gate.wait(5), job(0, fail_at=0))[1])
        rest = [_Job(ex, job, k, None, 0.02) for k in range(1, 40)]
        threading.Timer(0.05, gate.set).start()
        with pytest.raises(ValueError, match="job 0"):
            _drain([first, *rest])
    by_caller = [k for k, v in runs.items() if v[0] == "MainThread"]
    assert len(by_caller) < 15, "the caller went on through the tail after the failure"
    runs.clear()
    with ThreadPoolExecutor(1) as ex:
        blocker = _Job(ex, time.sleep, 0.2)   # keeps the worker busy: the next job waits
        j = _Job(ex, job, 7, 7)
        with pytest.raises(ValueError):
            j.run_if_pending()
        with pytest.raises(ValueError):
            j.result()
        blocker.result()
    assert len(runs[7]) == 1


def test_default_postprocess_workers_follow_torch_threads(segmentor):
    n = torch.get_num_threads()
    try:
        for threads, expected in ((1, 1), (2, 2), (8, 4)):
            torch.set_num_threads(threads)
            seg = Segmentor(segmentor.model, segmentor.config, device="cpu")
            assert seg.postprocess_workers == expected
    finally:
        torch.set_num_threads(n)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_postprocess_workers_are_validated(segmentor, bad):
    with pytest.raises(ValueError, match="postprocess_workers"):
        Segmentor(segmentor.model, segmentor.config, device="cpu", postprocess_workers=bad)


def _instances_reference(mask, distance, *, mpp, core_threshold=0.45, min_area_um2=6.0,
                         min_core_um2=1.0):
    """instances_from_maps as it was before it was rewritten in fewer passes (the
    reference: same output wanted)."""
    from scipy import ndimage
    from skimage.segmentation import relabel_sequential, watershed

    mask = np.asarray(mask, bool)
    if not mask.any():
        return np.zeros(mask.shape, np.int32)
    px = 1.0 / (mpp * mpp)
    cores, n = ndimage.label(mask & (distance > core_threshold))
    if n:
        sizes = np.bincount(cores.ravel())
        small = sizes < max(1.0, min_core_um2 * px)
        small[0] = False
        cores[small[cores]] = 0
    comp, n_comp = ndimage.label(mask)
    labels = comp.astype(np.int64)
    has = cores > 0
    if has.any():
        pairs = np.unique(comp[has].astype(np.int64) * (int(cores.max()) + 1) + cores[has])
        per_comp = np.bincount(pairs // (int(cores.max()) + 1), minlength=n_comp + 1)
        multi = per_comp >= 2
        if multi.any():
            sel = multi[comp]
            rows, cols = np.flatnonzero(sel.any(1)), np.flatnonzero(sel.any(0))
            box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
            sub = sel[box]
            ws = watershed(-distance[box], np.where(sub, cores[box], 0), mask=sub)
            left, _ = ndimage.label(sub & (ws == 0))
            ws = np.where(left > 0, left + ws.max(), ws)
            region = labels[box]
            region[sub] = ws[sub] + n_comp
    sizes = np.bincount(labels.ravel())
    small = sizes < min_area_um2 * px
    small[0] = False
    labels[small[labels]] = 0
    return relabel_sequential(labels)[0].astype(np.int32)


def test_instances_from_maps_matches_the_reference_implementation():
    from scipy import ndimage

    rng = np.random.default_rng(11)
    n_split = 0
    for trial in range(60):
        shape = (int(rng.integers(20, 120)), int(rng.integers(20, 120)))
        mask = ndimage.gaussian_filter(rng.random(shape), rng.uniform(1, 4)) > 0.5
        dist = ndimage.gaussian_filter(rng.random(shape), 1.5)
        dist = (dist - dist.min()) / max(np.ptp(dist), 1e-9)
        kw = [{}, {"min_area_um2": 0.0, "min_core_um2": 0.0}, {"core_threshold": 0.3},
              {"min_area_um2": 20.0}][trial % 4]
        mpp = [0.25, 0.5, 1.0][trial % 3]
        got = instances_from_maps(mask, dist, mpp=mpp, **kw)
        want = _instances_reference(mask, dist, mpp=mpp, **kw)
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, want)
        n_split += int(got.max() > ndimage.label(mask)[1])
    assert n_split > 10            # the watershed split objects in many trials


def test_a_waiting_caller_runs_jobs_no_worker_has_started():
    """The calling thread does not idle at the tail: a queued job is run by whoever asks
    for its result first; a started one is waited for."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from pathxai.segment.predictor import _Job

    gate, ran_in = threading.Event(), {}

    def blocker():
        gate.wait(5)
        return "blocked"

    def job(k):
        ran_in[k] = threading.current_thread().name
        return k * k

    with ThreadPoolExecutor(1, thread_name_prefix="worker") as ex:
        first = _Job(ex, blocker)                  # occupies the only worker
        queued = [_Job(ex, job, k) for k in range(3)]
        assert [j.result() for j in queued] == [0, 1, 4]
        assert set(ran_in.values()) == {threading.current_thread().name}
        gate.set()
        assert first.result() == "blocked"
