"""Shapes of every module of the segmentor network (small, CPU, seconds)."""

from __future__ import annotations

import pytest
import torch

from pathxai.segment.modeling import (
    STRIDE,
    ImageEncoder,
    ModelConfig,
    PixelDecoder,
    PromptHeads,
    PromptSegmentationModel,
    QueryFusion,
    TextEncoder,
    Vocabulary,
    sincos_position_2d,
    tokenize_words,
)

torch.manual_seed(0)
CH = (8, 8, 16, 16, 16)


def test_image_encoder_pyramid_strides():
    enc = ImageEncoder(CH, (1, 1, 1, 1, 1))
    feats = enc(torch.randn(2, 3, 64, 96))
    assert [f.shape for f in feats] == [
        (2, c, 64 // 2 ** (i + 1), 96 // 2 ** (i + 1)) for i, c in enumerate(CH)
    ]


def test_pixel_decoder_outputs_stride_2_and_16():
    enc = ImageEncoder(CH, (1, 1, 1, 1, 1))
    dec = PixelDecoder(CH, (8, 8, 8, 12, 12), embed_dim=6)
    pix, coarse = dec(enc(torch.randn(1, 3, 64, 64)))
    assert pix.shape == (1, 6, 32, 32)
    assert coarse.shape == (1, 12, 4, 4)


def test_text_encoder_and_vocabulary():
    vocab = Vocabulary.from_texts(["tumor region", "lymphocyte"])
    assert tokenize_words("Tumour-infiltrating LYMPHOCYTES") == ["tumour", "infiltrating",
                                                                "lymphocytes"]
    ids = vocab.encode(["tumor", "unknownword"], max_len=10)
    # [CLS] tumor [SEP] [UNK] [SEP]
    assert ids[0] == vocab.index["[CLS]"] and ids[2] == vocab.index["[SEP]"]
    assert ids[3] == vocab.index["[UNK]"] and len(ids) == 5
    te = TextEncoder(len(vocab), dim=16, depth=1, heads=2, max_len=10)
    x = torch.tensor([ids, ids[:3] + [0, 0]])
    tok, pooled = te(x, x == 0)
    assert tok.shape == (2, 5, 16) and pooled.shape == (2, 16)


def test_position_code_shape_and_distinct_rows():
    pe = sincos_position_2d(3, 4, 16)
    assert pe.shape == (12, 16)
    assert torch.unique(pe, dim=0).shape[0] == 12


def test_fusion_and_heads_shapes():
    fus = QueryFusion(dim=16, depth=2, heads=2, num_queries=5)
    img = torch.randn(3, 20, 16)
    text = torch.randn(3, 7, 16)
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[:, 5:] = True
    q = fus(img, torch.zeros(1, 20, 16), text, pad)
    assert q.shape == (3, 5, 16)
    out = PromptHeads(16, 6)(q, text[:, 0])
    assert out["mask_embed"].shape == (3, 6) and out["presence_logit"].shape == (3,)
    # query weights are a softmax over queries
    torch.testing.assert_close(out["query_weights"].sum(1), torch.ones(3))


def _tiny(vocab_size=30) -> PromptSegmentationModel:
    return PromptSegmentationModel(ModelConfig(
        vocab_size=vocab_size, enc_channels=CH, dec_dims=(8, 8, 8, 16, 16), embed_dim=8,
        dim=16, heads=2, text_depth=1, fusion_depth=1, num_queries=4, max_text_len=12))


def test_full_model_pairs_and_resolution():
    m = _tiny()
    ids = torch.randint(1, 30, (3, 6))
    out = m(torch.randn(2, 3, 64, 96), ids, ids == 0, torch.tensor([0, 0, 1, 1]),
            torch.tensor([0, 1, 2, 0]))
    assert out["mask_logits"].shape == (4, 64, 96)
    assert out["inst_logits"].shape == (4, 64, 96)
    assert out["presence_logits"].shape == (4,)
    assert out["query_weights"].shape == (4, 4)


def test_decode_reuses_one_image_encoding():
    m = _tiny().eval()
    ids = torch.randint(1, 30, (2, 5))
    with torch.no_grad():
        state = m.encode_image(torch.randn(1, 3, 64, 64))
        tok, pooled = m.encode_text(ids, ids == 0)
        a = m.decode(state, torch.tensor([0, 0]), tok, ids == 0, pooled)
        b = m.decode(state, torch.tensor([0]), tok[1:], (ids == 0)[1:], pooled[1:])
    # answering prompt 1 alone or together with prompt 0 gives the same mask
    torch.testing.assert_close(a["mask_logits"][1], b["mask_logits"][0], atol=1e-5, rtol=1e-5)


def test_grouped_cross_attention_equals_per_pair_decoding():
    # 3 images x 4 prompts in image-major order take the grouped path (image keys/values
    # projected once per image); a shuffled pair order takes the per-pair path. Same answers.
    from pathxai.segment.modeling.segmentor_model import _uniform_group

    m = _tiny().eval()
    ids = torch.randint(1, 30, (4, 6))
    ii = torch.arange(3).repeat_interleave(4)
    pi = torch.arange(4).repeat(3)
    assert _uniform_group(ii, 3) == 4
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(1))
    assert _uniform_group(ii[perm], 3) == 1
    with torch.no_grad():
        state = m.encode_image(torch.randn(3, 3, 64, 64))
        tok, pooled = m.encode_text(ids, ids == 0)
        pad = ids == 0
        a = m.decode(state, ii, tok[pi], pad[pi], pooled[pi])
        b = m.decode(state, ii[perm], tok[pi[perm]], pad[pi[perm]], pooled[pi[perm]])
    inv = torch.argsort(perm)
    for key in ("mask_logits", "inst_logits", "presence_logits", "query_weights"):
        torch.testing.assert_close(a[key], b[key][inv], atol=1e-5, rtol=1e-5)


def test_encoder_rejects_sizes_not_multiple_of_stride():
    with pytest.raises(ValueError, match=str(STRIDE)):
        _tiny().encode_image(torch.randn(1, 3, 50, 64))


def test_model_config_round_trip():
    cfg = ModelConfig(vocab_size=12)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
