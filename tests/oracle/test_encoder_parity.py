"""lmhub's BERT, RoBERTa and ModernBERT against transformers on the same random weights.

Each case builds a tiny random transformers masked-LM model that exercises one of the family's
features (BERT's token types and tied or untied head; RoBERTa's positions counted after the
padding id; ModernBERT's fused Wqkv/Wi, global and sliding-window layers with their own RoPE
bases, and its optional biases), saves it, loads it with lmhub and checks: fp32 masked-LM logits
under both attention kernels with and without a padding mask, export back to a directory
transformers loads natively, and an exact HF -> lmhub -> HF state-dict round trip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import lmhub
import lmhub.hf
from lmhub.nn.attention import ATTN_IMPLS
from tests.oracle.parity import ATOL, assert_export_matches_checkpoint, max_diff

transformers = pytest.importorskip("transformers")

VOCAB = 120
SEQ = 40  # longer than ModernBERT's local window below, so the window is exercised

SHAPE: dict[str, Any] = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
    intermediate_size=96,
    max_position_embeddings=64,
)
MODERNBERT_IDS = dict(
    pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2
)

# case -> (model_type, transformers masked-LM class, HF config overrides, lmhub config expected)
CASES: dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]] = {
    "bert": ("bert", "BertForMaskedLM", {}, {"flavour": "bert", "tie_embeddings": True}),
    "bert-untied-gelu-tanh": (
        "bert",
        "BertForMaskedLM",
        {"tie_word_embeddings": False, "hidden_act": "gelu_new", "type_vocab_size": 3},
        {"tie_embeddings": False, "activation": "gelu_tanh", "type_vocab_size": 3},
    ),
    "roberta": (
        "roberta",
        "RobertaForMaskedLM",
        {"pad_token_id": 1, "type_vocab_size": 1, "layer_norm_eps": 1e-5},
        {"flavour": "roberta", "pad_token_id": 1, "type_vocab_size": 1},
    ),
    "modernbert": (
        "modernbert",
        "ModernBertForMaskedLM",
        {**MODERNBERT_IDS, "local_attention": 16},
        {"global_attn_every_n_layers": 3, "local_attention": 16, "decoder_bias": True},
    ),
    "modernbert-biases-untied": (
        "modernbert",
        "ModernBertForMaskedLM",
        {
            **MODERNBERT_IDS,
            "local_attention": 8,
            "num_hidden_layers": 4,
            "global_attn_every_n_layers": 2,
            "attention_bias": True,
            "mlp_bias": True,
            "norm_bias": True,
            "classifier_bias": True,
            "tie_word_embeddings": False,
            "global_rope_theta": 5000.0,
            "local_rope_theta": 500.0,
        },
        {
            "global_attn_every_n_layers": 2,
            "norm_bias": True,
            "attn_bias": True,
            "tie_embeddings": False,
            "global_rope_theta": 5000.0,
            "local_rope_theta": 500.0,
        },
    ),
}


def save_tiny(directory: Path, case: str, *, seed: int = 0) -> Any:
    """Create, randomise (norms and biases too) and save the case's tiny HF model; return it."""
    model_type, model_class, overrides, _ = CASES[case]
    config = transformers.AutoConfig.for_model(model_type, **{**SHAPE, **overrides})
    torch.manual_seed(seed)
    model = getattr(transformers, model_class)(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name.lower():
                p.uniform_(0.5, 1.5) if name.endswith("weight") else p.uniform_(-0.1, 0.1)
            elif name.endswith("bias"):
                p.uniform_(-0.1, 0.1)
            else:
                p.normal_(0.0, 0.1)
    model.save_pretrained(directory)
    return model


def load_case(directory: Path, case: str, **lmhub_config: Any) -> tuple[Any, Any]:
    hf = save_tiny(directory, case)
    model = lmhub.load_model(directory, config=lmhub_config or None).eval()
    model_type = CASES[case][0]
    assert (
        type(model)
        is lmhub.get_family("modernbert" if model_type == "modernbert" else "bert").model_class
    )
    for field, value in CASES[case][3].items():
        assert getattr(model.config, field) == value, field
    return hf, model


def inputs(case: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Two rows of random ids; the second right-padded with the pad id after 25 tokens."""
    pad = CASES[case][2].get("pad_token_id", 0)
    gen = torch.Generator().manual_seed(7)
    ids = torch.randint(3, VOCAB, (2, SEQ), generator=gen)
    mask = torch.ones_like(ids)
    ids[1, 25:], mask[1, 25:] = pad, 0
    return ids, mask


@pytest.mark.parametrize("attn_impl", ATTN_IMPLS)
@pytest.mark.parametrize("case", list(CASES))
def test_masked_lm_logits_match_transformers(tmp_path: Path, case: str, attn_impl: str) -> None:
    hf, model = load_case(tmp_path, case, attn_impl=attn_impl)
    ids, mask = inputs(case)
    with torch.no_grad():
        assert max_diff(model(ids[:1]), hf(ids[:1]).logits) <= ATOL
        got, want = model(ids, attention_mask=mask), hf(ids, attention_mask=mask).logits
        real = mask.bool()
        assert max_diff(got[real], want[real]) <= ATOL
        # The mask matters: without it the padded row's real tokens would see the padding.
        assert max_diff(model(ids)[1, :25], got[1, :25]) > 1e-3
        hidden = model(ids, attention_mask=mask, return_hidden=True)
        assert hidden.shape == (2, SEQ, SHAPE["hidden_size"])


def test_token_types_match_transformers(tmp_path: Path) -> None:
    hf, model = load_case(tmp_path, "bert-untied-gelu-tanh")
    ids, mask = inputs("bert")
    types = torch.randint(0, 3, ids.shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        got = model(ids, attention_mask=mask, token_type_ids=types)
        want = hf(ids, attention_mask=mask, token_type_ids=types).logits
        assert max_diff(got[mask.bool()], want[mask.bool()]) <= ATOL
        assert max_diff(got, model(ids, attention_mask=mask)) > 1e-3


@pytest.mark.parametrize("case", list(CASES))
def test_export_round_trips_exactly(tmp_path: Path, case: str) -> None:
    model_type, model_class = CASES[case][:2]
    hf, model = load_case(tmp_path / "hf", case)
    # HF -> lmhub -> HF reproduces the state dict exactly (tied heads left out alike). An
    # untied BERT head's own bias is a dead parameter (only the decoder's is used): not written.
    dead = ("cls.predictions.bias",) if case == "bert-untied-gelu-tanh" else ()
    config = assert_export_matches_checkpoint(
        model, tmp_path / "hf", tmp_path / "out", model_type=model_type, dropped=dead
    )
    assert config["architectures"] == [model_class]

    # transformers loads the export natively, with the same config and logits.
    back = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "out").eval()
    assert type(back) is type(hf)
    for key in ("tie_word_embeddings", "layer_types", "rope_parameters", "pad_token_id"):
        assert getattr(back.config, key, None) == getattr(hf.config, key, None), key
    ids, mask = inputs(case)
    with torch.no_grad():
        assert (
            max_diff(back(ids, attention_mask=mask).logits, hf(ids, attention_mask=mask).logits)
            == 0
        )
        assert max_diff(model(ids[:1]), back(ids[:1]).logits) <= ATOL


def test_a_pretraining_checkpoint_loads_without_its_pooler_and_nsp_head(tmp_path: Path) -> None:
    """bert-base-uncased's files come from BertForPreTraining: a pooler and a next-sentence
    head the masked-LM model does not use, and the head's bias saved twice."""
    config = transformers.BertConfig(**SHAPE)
    torch.manual_seed(0)
    hf = transformers.BertForPreTraining(config).eval()
    hf.save_pretrained(tmp_path)
    from safetensors.torch import save_file

    state = load_file(tmp_path / "model.safetensors")
    assert any(k.startswith("bert.pooler.") for k in state)
    assert any(k.startswith("cls.seq_relationship.") for k in state)
    state["cls.predictions.decoder.bias"] = state["cls.predictions.bias"].clone()
    state["bert.embeddings.position_ids"] = torch.arange(SHAPE["max_position_embeddings"])[None]
    save_file(state, tmp_path / "model.safetensors")
    model = lmhub.load_model(tmp_path).eval()
    ids, _ = inputs("bert")
    with torch.no_grad():
        assert max_diff(model(ids), hf(ids).prediction_logits) <= ATOL


@pytest.mark.parametrize("case", ["modernbert", "modernbert-biases-untied"])
def test_modernbert_padded_and_unpadded_runs_match_transformers(tmp_path: Path, case: str) -> None:
    """A padded batch runs on its real tokens only (one packed row), or padded as transformers'
    eager/SDPA paths do: both give transformers' logits at every real token."""
    hf, unpadded = load_case(tmp_path / "a", case)
    _, padded = load_case(tmp_path / "b", case, unpadded=False)
    assert unpadded.config.unpadded and not padded.config.unpadded
    ids, mask = inputs(case)
    mask[0, 33:] = 0  # both rows padded, by different amounts
    real = mask.bool()
    with torch.no_grad():
        want = hf(ids, attention_mask=mask).logits
        packed, plain = unpadded(ids, attention_mask=mask), padded(ids, attention_mask=mask)
        hidden = unpadded(ids, attention_mask=mask, return_hidden=True)
    assert max_diff(packed[real], want[real]) <= ATOL
    assert max_diff(plain[real], want[real]) <= ATOL
    assert (packed[~real] == 0).all() and (hidden[~real] == 0).all()
    assert hidden.shape == (2, SEQ, SHAPE["hidden_size"])
    # The causal mode packs alike: each token sees the earlier ones of its own sequence.
    with torch.no_grad():
        packed = unpadded(ids, attention_mask=mask, causal=True)
        plain = padded(ids, attention_mask=mask, causal=True)
        first = padded(ids[:1, :5], causal=True)
    assert max_diff(packed[real], plain[real]) <= ATOL
    assert max_diff(plain[0, :5], first[0]) <= ATOL


def test_a_checkpoint_with_tensorflow_layer_norm_names_loads(tmp_path: Path) -> None:
    """google-bert/bert-base-uncased's files name LayerNorm parameters gamma and beta; export
    writes today's weight and bias."""
    from safetensors.torch import save_file

    hf, _ = load_case(tmp_path / "hf", "bert")
    state = load_file(tmp_path / "hf" / "model.safetensors")
    renamed = {
        k.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
            "LayerNorm.bias", "LayerNorm.beta"
        ): v
        for k, v in state.items()
    }
    assert sum(k.endswith(".gamma") for k in renamed) == 2 * SHAPE["num_hidden_layers"] + 2
    save_file(renamed, tmp_path / "hf" / "model.safetensors")
    model = lmhub.load_model(tmp_path / "hf").eval()
    ids, mask = inputs("bert")
    with torch.no_grad():
        got = model(ids, attention_mask=mask)
        assert max_diff(got[mask.bool()], hf(ids, attention_mask=mask).logits[mask.bool()]) <= ATOL
    lmhub.hf.export(model, tmp_path / "out")
    assert load_file(tmp_path / "out" / "model.safetensors").keys() == state.keys()
