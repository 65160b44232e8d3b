"""The FMS-style base classes on hand-written PyTorch modules that know nothing of lmhub.

Each module here is plain torch; the only glue is an adapter with one method, ``_adapt``, plus an
architecture class and a head mixin.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

transformers = pytest.importorskip("transformers")

from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPast  # noqa: E402

from lmhub.hf.adapters import (  # noqa: E402
    CausalLMHeadMixin,
    ConditionalGenerationLMHeadMixin,
    HFDecoderAdapter,
    HFDecoderModelArchitecture,
    HFEncoderAdapter,
    HFEncoderDecoderModelArchitecture,
    HFEncoderModelArchitecture,
    MaskedLMHeadMixin,
    SequenceClassificationLMHeadMixin,
)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- plain PyTorch modules ----------------------------------------------------------------------


class Block(nn.Module):
    """Pre-norm attention + MLP; optional cross-attention over an encoder's states."""

    def __init__(self, dim: int, *, causal: bool, cross: bool = False) -> None:
        super().__init__()
        self.causal = causal
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.cross = nn.Linear(dim, 3 * dim) if cross else None
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    @staticmethod
    def heads(x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (2, -1)).transpose(1, 2)

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor | None = None, pad: torch.Tensor | None = None
    ) -> torch.Tensor:
        q, k, v = self.heads(self.qkv(self.norm1(x))).chunk(3, dim=-1)
        mask = None if pad is None else pad.bool()[:, None, None, :]
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal)
        x = x + self.out(attn.transpose(1, 2).flatten(2))
        if self.cross is not None and memory is not None:
            q = self.heads(self.cross(x))[..., : x.shape[-1] // 2]
            _, k, v = self.heads(self.cross(memory)).chunk(3, dim=-1)
            x = x + F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)
        return x + self.mlp(self.norm2(x))


class TinyBody(nn.Module):
    """Token embedding + learned positions + blocks + final norm: hidden states out."""

    def __init__(self, vocab: int = 50, dim: int = 32, *, causal: bool, cross: bool = False):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(64, dim)
        self.blocks = nn.ModuleList(Block(dim, causal=causal, cross=cross) for _ in range(2))
        self.norm = nn.LayerNorm(dim)

    def forward(
        self, ids: torch.Tensor, memory: torch.Tensor | None = None, pad: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = self.embed(ids) + self.pos(torch.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x, memory, pad)
        return self.norm(x)


# -- the adapters: one method each --------------------------------------------------------------


class TinyDecoderAdapter(HFDecoderAdapter):
    def _adapt(self, input_ids: Any = None, **kwargs: Any) -> BaseModelOutputWithPast:
        return BaseModelOutputWithPast(last_hidden_state=self.model(input_ids))


class TinyEncoderAdapter(HFEncoderAdapter):
    def _adapt(
        self, input_ids: Any = None, attention_mask: Any = None, **kwargs: Any
    ) -> BaseModelOutput:
        return BaseModelOutput(last_hidden_state=self.model(input_ids, pad=attention_mask))


class TinyCrossDecoderAdapter(HFDecoderAdapter):
    def _adapt(
        self, input_ids: Any = None, encoder_hidden_states: Any = None, **kwargs: Any
    ) -> BaseModelOutputWithPast:
        return BaseModelOutputWithPast(
            last_hidden_state=self.model(input_ids, encoder_hidden_states)
        )


class TinyConfig(transformers.PretrainedConfig):
    model_type = "lmhub_test_tiny"

    vocab_size: int = 50
    hidden_size: int = 32
    pad_token_id: int | None = 0
    eos_token_id: int | None = None
    bos_token_id: int | None = None
    decoder_start_token_id: int | None = 1


class TinyForCausalLM(CausalLMHeadMixin, HFDecoderModelArchitecture):
    config_class = TinyConfig

    def _build_adapter(self, name: str, config: Any) -> Any:  # for from_pretrained
        return TinyDecoderAdapter(
            TinyBody(config.vocab_size, config.hidden_size, causal=True), config
        )


class TinyForMaskedLM(MaskedLMHeadMixin, HFEncoderModelArchitecture):
    config_class = TinyConfig


class TinyEncoderForSequenceClassification(
    SequenceClassificationLMHeadMixin, HFEncoderModelArchitecture
):
    config_class = TinyConfig


class TinyDecoderForSequenceClassification(
    SequenceClassificationLMHeadMixin, HFDecoderModelArchitecture
):
    config_class = TinyConfig


class TinyForConditionalGeneration(
    ConditionalGenerationLMHeadMixin, HFEncoderDecoderModelArchitecture
):
    config_class = TinyConfig


def greedy(step: Any, ids: torch.Tensor, n: int) -> torch.Tensor:
    with torch.no_grad():
        for _ in range(n):
            ids = torch.cat([ids, step(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids


def wide_init(module: nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.5)


# -- tests --------------------------------------------------------------------------------------


def test_plain_decoder_generates_and_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = TinyConfig()
    body = TinyBody(causal=True)
    head = nn.Linear(32, 50, bias=False)
    wide_init(body)
    wide_init(head)
    body.eval()
    lm = TinyForCausalLM(
        config, decoder=TinyDecoderAdapter(body, config), embedding=body.embed, lm_head=head
    )

    # The embedding lives inside the body: reachable, but not registered (or saved) twice.
    assert lm.get_input_embeddings() is body.embed and lm.get_output_embeddings() is head
    assert sorted(lm.state_dict()) == sorted(
        [f"decoder.model.{k}" for k in body.state_dict()] + ["lm_head.weight"]
    )
    assert lm.generation_config.use_cache is False  # the adapter has no KV cache

    prompt = torch.tensor([[4, 9, 13]])
    expected = greedy(lambda ids: head(body(ids)), prompt, 8)
    assert len(set(expected[0, 3:].tolist())) > 2
    assert torch.equal(lm.generate(prompt, max_new_tokens=8, do_sample=False), expected)
    # Asking for a cache anyway still recomputes the whole sequence: same tokens.
    assert torch.equal(lm.generate(prompt, max_new_tokens=8, use_cache=True), expected)
    beams = lm.generate(prompt, max_new_tokens=4, num_beams=3, num_return_sequences=2)
    assert beams.shape == (2, 7)

    labels = torch.tensor([[4, 9, 13, 2]])
    out = lm(labels, labels=labels)
    logits = head(body(labels))
    torch.testing.assert_close(out.loss, F.cross_entropy(logits[0, :-1], labels[0, 1:]))
    with pytest.raises(ValueError, match="cannot use a KV cache"):
        lm(prompt, past_key_values=transformers.DynamicCache())

    lm.save_pretrained(tmp_path)
    loaded = TinyForCausalLM.from_pretrained(tmp_path).eval()  # built by _build_adapter
    assert torch.equal(loaded.generate(prompt, max_new_tokens=8), expected)


def test_a_missing_adapter_says_how_to_build_one() -> None:
    with pytest.raises(NotImplementedError, match="_build_adapter"):
        TinyForMaskedLM(TinyConfig())


def test_plain_encoder_masked_lm_and_classification() -> None:
    torch.manual_seed(0)
    config = TinyConfig(num_labels=3)
    body = TinyBody(causal=False).eval()
    mlm = TinyForMaskedLM(config, encoder=TinyEncoderAdapter(body, config))
    assert isinstance(mlm.lm_head, nn.Linear) and mlm.lm_head.out_features == 50
    ids = torch.randint(1, 50, (2, 6))
    labels = torch.full_like(ids, -100)
    labels[:, 2] = ids[:, 2]
    out = mlm(ids, labels=labels)
    logits = mlm.lm_head(body(ids))
    torch.testing.assert_close(out.logits, logits)
    torch.testing.assert_close(out.loss, F.cross_entropy(logits[:, 2], ids[:, 2]))

    cls = TinyEncoderForSequenceClassification(config, encoder=TinyEncoderAdapter(body, config))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    out = cls(ids, attention_mask=mask, labels=torch.tensor([2, 0]))
    expected = cls.lm_head(body(ids, pad=mask)[:, 0])  # the first token
    torch.testing.assert_close(out.logits, expected)
    torch.testing.assert_close(out.loss, F.cross_entropy(expected, torch.tensor([2, 0])))


def test_plain_decoder_classification_pools_the_last_token_by_pad_id() -> None:
    torch.manual_seed(0)
    config = TinyConfig(num_labels=2)
    body = TinyBody(causal=True).eval()
    cls = TinyDecoderForSequenceClassification(config, decoder=TinyDecoderAdapter(body, config))
    ids = torch.tensor([[5, 6, 7, 0, 0]])  # right-padded with pad_token_id 0, no mask given
    out = cls(ids, labels=torch.tensor([[0.0, 1.0]]))
    torch.testing.assert_close(out.logits, cls.lm_head(body(ids)[:, 2]))
    assert cls.config.problem_type == "multi_label_classification"


def test_plain_encoder_decoder_generates() -> None:
    torch.manual_seed(0)
    config = TinyConfig()
    encoder = TinyBody(causal=False)
    decoder = TinyBody(causal=True, cross=True)
    wide_init(encoder)
    wide_init(decoder)
    encoder.eval()
    decoder.eval()
    seq2seq = TinyForConditionalGeneration(
        config,
        encoder=TinyEncoderAdapter(encoder, config),
        decoder=TinyCrossDecoderAdapter(decoder, config),
    ).eval()
    assert seq2seq.get_encoder().model is encoder

    source = torch.tensor([[7, 8, 9, 10]])
    memory = encoder(source)
    start = torch.tensor([[config.decoder_start_token_id]])
    expected = greedy(lambda ids: seq2seq.lm_head(decoder(ids, memory)), start, 6)
    assert len(set(expected[0, 1:].tolist())) > 2
    out = seq2seq.generate(source, max_new_tokens=6, do_sample=False)
    assert torch.equal(out, expected)
    beams = seq2seq.generate(source, max_new_tokens=6, num_beams=3, num_return_sequences=3)
    assert beams.shape == (3, 7) and bool((beams[:, 0] == 1).all())

    labels = torch.tensor([[11, 12, -100]])
    result = seq2seq(source, labels=labels)
    decoder_inputs = torch.tensor([[1, 11, 12]])  # labels shifted right behind the start token
    logits = seq2seq.lm_head(decoder(decoder_inputs, memory))
    torch.testing.assert_close(result.logits, logits)
    torch.testing.assert_close(result.loss, F.cross_entropy(logits[0, :2], labels[0, :2]))
