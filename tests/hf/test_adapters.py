"""`lmhub.hf.to_hf_api`: native lmhub models behind transformers' model API.

Covers generate() (greedy, equal to a native greedy loop and to lmhub.generation.generate;
sampling; beam search), transformers' cache objects, left padding,
the labels loss, pipeline("text-generation"), save_pretrained/from_pretrained with the Auto
classes, one Trainer step, and the masked-LM / sequence-classification heads (the encoder is a toy
family built here from shared nn blocks, since every built-in family is a decoder).

Uses tests/fixtures/gpt2_vocab.json and gpt2_merges.txt for a real tokenizer in the pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lmhub
import lmhub.hf
from lmhub.generation import generate as lmhub_generate
from lmhub.models.archs import ArchRegistry
from lmhub.models.family import ModelFamily
from lmhub.models.hub import get_model_hub
from lmhub.nn.attention import Attention
from lmhub.nn.ffn import GLUFeedForward
from lmhub.nn.masks import build_attention_mask
from lmhub.nn.norm import RMSNorm
from lmhub.nn.rope import RotaryEmbedding
from lmhub.nn.transformer import PreNormDecoderLayer
from tests.fixtures import GPT2_MERGES, GPT2_VOCAB

transformers = pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # Tiny matmuls are many times faster on one thread than fighting over two.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def native(family: str = "llama", *, std: float = 0.3, **overrides: Any) -> nn.Module:
    """A tiny model of ``family`` with weights wide enough that greedy text is not one token."""
    hub = get_model_hub(family)
    config = hub.get_arch_config(f"{family}_tiny")
    for name, value in overrides.items():
        setattr(config, name, value)
    torch.manual_seed(0)
    model = hub.create_new_model(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() > 1:
                param.normal_(0.0, std)
    return model


def greedy_loop(model: nn.Module, ids: torch.Tensor, steps: int) -> torch.Tensor:
    """The reference: recompute the whole sequence and append the argmax, ``steps`` times."""
    with torch.no_grad():
        for _ in range(steps):
            ids = torch.cat([ids, model(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids


PROMPT = torch.tensor([[17, 101, 5, 230, 44, 9]])


# -- generation -------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["llama", "causal_lm", "single_head", "deepone"])
def test_greedy_generate_equals_native_loop_and_lmhub_generate(family: str) -> None:
    model = native(family)
    hf = lmhub.hf.to_hf_api(model)
    assert isinstance(hf, transformers.PreTrainedModel)
    assert isinstance(hf, transformers.GenerationMixin) and hf.can_generate()
    torch.testing.assert_close(hf(PROMPT).logits, model(PROMPT), rtol=0, atol=0)

    expected = greedy_loop(model, PROMPT, 10)
    cached = hf.generate(PROMPT, max_new_tokens=10, do_sample=False)
    uncached = hf.generate(PROMPT, max_new_tokens=10, do_sample=False, use_cache=False)
    assert torch.equal(cached, expected)
    assert torch.equal(uncached, expected)
    assert torch.equal(lmhub_generate(model, PROMPT, max_new_tokens=10), expected)


def test_sampling_and_beam_search() -> None:
    hf = lmhub.hf.to_hf_api(native())
    greedy = hf.generate(PROMPT, max_new_tokens=8, do_sample=False)
    top1 = hf.generate(PROMPT, max_new_tokens=8, do_sample=True, top_k=1)
    assert torch.equal(top1, greedy)  # top-k 1 sampling is greedy decoding

    torch.manual_seed(3)
    sampled = hf.generate(PROMPT, max_new_tokens=8, do_sample=True, temperature=1.5)
    torch.manual_seed(3)
    again = hf.generate(PROMPT, max_new_tokens=8, do_sample=True, temperature=1.5, use_cache=False)
    assert sampled.shape == (1, 14) and torch.equal(sampled, again)

    # Beam search reorders the transformers cache between steps; recomputing must agree.
    beams = hf.generate(PROMPT, max_new_tokens=8, num_beams=3, num_return_sequences=3)
    beams_uncached = hf.generate(
        PROMPT, max_new_tokens=8, num_beams=3, num_return_sequences=3, use_cache=False
    )
    assert beams.shape == (3, 14) and torch.equal(beams, beams_uncached)
    assert torch.equal(beams[:, :6], PROMPT.expand(3, -1))


def test_transformers_cache_objects_are_honoured() -> None:
    model = native()
    hf = lmhub.hf.to_hf_api(model)
    full = torch.cat([PROMPT, torch.tensor([[3, 77]])], dim=1)
    cache = transformers.DynamicCache()
    first = hf(PROMPT, past_key_values=cache, use_cache=True)
    assert first.past_key_values is cache and cache.get_seq_length() == 6
    second = hf(full[:, 6:], past_key_values=cache, use_cache=True)
    assert cache.get_seq_length() == 8
    torch.testing.assert_close(second.logits, model(full)[:, 6:], rtol=1e-4, atol=1e-4)
    assert hf(PROMPT, use_cache=False).past_key_values is None


def test_left_padded_batch_generates_like_single_prompts() -> None:
    hf = lmhub.hf.to_hf_api(native())
    short = torch.tensor([[88, 12, 199]])
    batch = torch.cat([PROMPT, torch.cat([torch.zeros(1, 3, dtype=torch.long), short], 1)])
    mask = torch.ones_like(batch)
    mask[1, :3] = 0
    together = hf.generate(batch, attention_mask=mask, max_new_tokens=8, pad_token_id=0)
    alone_long = hf.generate(PROMPT, max_new_tokens=8)
    alone_short = hf.generate(short, max_new_tokens=8)
    assert len(set(alone_long[0, 6:].tolist())) > 4  # real text, not one token repeated
    assert torch.equal(together[0], alone_long[0])
    assert torch.equal(together[1, 6:], alone_short[0, 3:])


# -- loss, pipeline, training -----------------------------------------------------------------


def test_labels_give_the_shifted_cross_entropy_ignoring_minus_100() -> None:
    model = native()
    hf = lmhub.hf.to_hf_api(model)
    ids = torch.randint(0, 256, (2, 9))
    labels = ids.clone()
    labels[0, :4] = -100
    labels[1, 7] = -100
    out = hf(ids, labels=labels)
    logits = model(ids)
    manual = []
    for b in range(2):
        for t in range(8):
            target = labels[b, t + 1]
            if target != -100:
                manual.append(-torch.log_softmax(logits[b, t], -1)[target])
    torch.testing.assert_close(out.loss, torch.stack(manual).mean(), rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def gpt2_tokenizer() -> Any:
    tok = transformers.GPT2TokenizerFast(vocab=str(GPT2_VOCAB), merges=str(GPT2_MERGES))
    assert tok("Hello world").input_ids == [15496, 995]  # not the empty 1-token tokenizer
    tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def gpt2_sized_llama(tok: Any) -> nn.Module:
    return native(
        "llama",
        std=0.5,
        vocab_size=len(tok),
        model_dim=32,
        num_heads=4,
        num_kv_heads=2,
        ffn_inner_dim=64,
        num_layers=2,
        tie_embeddings=True,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=None,
    )


def test_text_generation_pipeline(gpt2_tokenizer: Any) -> None:
    tok = gpt2_tokenizer
    model = gpt2_sized_llama(tok)
    hf = lmhub.hf.to_hf_api(model)
    pipe = transformers.pipeline("text-generation", model=hf, tokenizer=tok)
    [result] = pipe("Hello world", max_new_tokens=5, do_sample=False)
    prompt = torch.tensor([tok("Hello world").input_ids])
    expected = tok.decode(greedy_loop(model, prompt, 5)[0])
    assert result["generated_text"] == expected

    # Batched, left-padded prompts through the tokenizer: same text as one at a time.
    prompts = ["To be, or not to be", "Friends"]
    batch = tok(prompts, return_tensors="pt", padding=True)
    together = hf.generate(**batch, max_new_tokens=5, pad_token_id=tok.eos_token_id)
    for row, text in zip(together, prompts):
        alone = hf.generate(**tok(text, return_tensors="pt"), max_new_tokens=5)
        assert tok.decode(row[-5:]) == tok.decode(alone[0, -5:])


def test_one_trainer_step(tmp_path: Path) -> None:
    model = native(model_dim=32, num_heads=4, num_kv_heads=2, ffn_inner_dim=64, num_layers=2)
    hf = lmhub.hf.to_hf_api(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    class Rows(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            ids = (torch.arange(16) * (i + 3)) % 256
            return {"input_ids": ids, "labels": ids.clone()}

    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=1,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = transformers.Trainer(model=hf, args=args, train_dataset=Rows())
    result = trainer.train()
    assert result.global_step == 1 and torch.isfinite(torch.tensor(result.training_loss))
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) == len(before)  # the native model itself was trained


def test_activation_checkpointing_through_the_hf_api() -> None:
    model = native(model_dim=32, num_heads=4, num_kv_heads=2, ffn_inner_dim=64).train()
    hf = lmhub.hf.to_hf_api(model)
    ids = torch.randint(0, 256, (2, 12))
    hf(ids, labels=ids).loss.backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)

    hf.activation_checkpointing_enable()
    assert all("forward" in vars(layer) for layer in model.layers)
    hf(ids, labels=ids).loss.backward()
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, plain[name], rtol=0, atol=1e-6, msg=name)
    hf.activation_checkpointing_disable()
    assert all("forward" not in vars(layer) for layer in model.layers)


# -- save / load ------------------------------------------------------------------------------


def test_save_pretrained_and_auto_classes_round_trip(tmp_path: Path, gpt2_tokenizer: Any) -> None:
    lmhub.hf.register()
    lmhub.hf.register()  # idempotent
    model = gpt2_sized_llama(gpt2_tokenizer)  # tied embeddings
    hf = lmhub.hf.to_hf_api(model)
    hf.save_pretrained(tmp_path)

    config = transformers.AutoConfig.from_pretrained(tmp_path)
    assert config.model_type == "lmhub_decoder" and config.family == "llama"
    loaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(loaded) is lmhub.hf.adapters.LmhubForCausalLM
    inner = loaded.decoder.model
    assert inner.lm_head.weight is inner.embed.weight  # re-tied
    assert torch.equal(inner.rope.inv_freq, model.rope.inv_freq)  # non-persistent buffer rebuilt
    ids = torch.randint(0, 50257, (2, 7))
    torch.testing.assert_close(loaded(ids).logits, model(ids), rtol=0, atol=0)
    assert torch.equal(
        loaded.generate(ids[:1], max_new_tokens=5), hf.generate(ids[:1], max_new_tokens=5)
    )

    base = transformers.AutoModel.from_pretrained(tmp_path)
    hidden = base(ids).last_hidden_state
    torch.testing.assert_close(hidden, model(ids, return_hidden=True), rtol=0, atol=0)

    classifier = transformers.AutoModelForSequenceClassification.from_pretrained(
        tmp_path, num_labels=3
    )
    assert classifier(ids).logits.shape == (2, 3)
    direct = lmhub.hf.adapters.LmhubForCausalLM.from_pretrained(tmp_path)
    torch.testing.assert_close(direct(ids).logits, model(ids), rtol=0, atol=0)


def test_sequence_classification_pools_the_last_real_token() -> None:
    model = native()
    hf = lmhub.hf.to_hf_api(model, task="sequence_classification", num_labels=4)
    ids = torch.tensor([[0, 0, 5, 6, 7], [5, 6, 7, 0, 0]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 0, 0]])
    out = hf(ids, attention_mask=mask, labels=torch.tensor([1, 3]))
    hidden_left = model(ids[:1, 2:], return_hidden=True)[:, -1]
    expected = hf.lm_head(hidden_left)
    torch.testing.assert_close(out.logits[0:1], expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.logits[1:2], expected, rtol=1e-5, atol=1e-5)  # right-padded
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, torch.tensor([1, 3])))
    assert hf.config.problem_type == "single_label_classification"


def test_unknown_task_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="decoder model has no 'masked_lm' head"):
        lmhub.hf.to_hf_api(native(), task="masked_lm")
    with pytest.raises(lmhub.ConfigError, match="names no lmhub model family"):
        lmhub.hf.adapters.LmhubForCausalLM(lmhub.hf.adapters.LmhubDecoderConfig())
    with pytest.raises(lmhub.ModelFamilyNotKnownError, match="lama"):
        lmhub.hf.adapters.LmhubForCausalLM(lmhub.hf.adapters.LmhubDecoderConfig(family="lama"))


# -- an encoder family, built from shared blocks ---------------------------------------------


@dataclass(kw_only=True)
class ToyEncoderConfig:
    """A bidirectional toy encoder."""

    vocab_size: int = 64
    """Tokens."""
    model_dim: int = 32
    """Width."""
    num_layers: int = 2
    """Layers."""
    pad_token_id: int | None = 0
    """Padding id."""


class ToyEncoder(nn.Module):
    supports_kv_cache: ClassVar[bool] = False

    def __init__(self, config: ToyEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.model_dim)
        self.rope = RotaryEmbedding(8, theta=10_000.0, max_seq_len=64)
        self.layers = nn.ModuleList(
            PreNormDecoderLayer(
                attn_norm=RMSNorm(config.model_dim),
                attn=Attention(config.model_dim, num_heads=4, num_kv_heads=4, head_dim=8),
                ffn_norm=RMSNorm(config.model_dim),
                ffn=GLUFeedForward(config.model_dim, 48, activation="silu"),
            )
            for _ in range(config.num_layers)
        )
        self.final_norm = RMSNorm(config.model_dim)
        self.lm_head = nn.Linear(config.model_dim, config.vocab_size, bias=False)
        if not self.embed.weight.is_meta:
            for p in self.parameters():
                if p.dim() > 1:
                    nn.init.normal_(p, std=0.3)

    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: Any = None,
        return_hidden: bool = False,
    ) -> torch.Tensor:
        b, s = input_ids.shape
        if position_ids is None:
            position_ids = torch.arange(s).expand(b, s)
        x = self.embed(input_ids)
        rope = self.rope(position_ids, x.dtype)
        mask = build_attention_mask(q_len=s, kv_len=s, padding_mask=attention_mask, causal=False)
        for layer in self.layers:
            x = layer(x, rope=rope, mask=mask)
        x = self.final_norm(x)
        return x if return_hidden else self.lm_head(x)


TOY_ARCHS: ArchRegistry[ToyEncoderConfig] = ArchRegistry("toy_encoder", ToyEncoderConfig)
TOY_ARCHS.register("toy_encoder_tiny")(ToyEncoderConfig)
TOY_ENCODER = ModelFamily(
    name="toy_encoder",
    model_class=ToyEncoder,
    config_class=ToyEncoderConfig,
    archs=TOY_ARCHS,
    builder=ToyEncoder,
    kind="encoder",
)


@pytest.fixture
def toy_encoder(monkeypatch: pytest.MonkeyPatch) -> nn.Module:
    from lmhub.models import registry

    lmhub.list_families()  # load the built-ins first, then add the toy for this test only
    monkeypatch.setitem(registry._families, "toy_encoder", TOY_ENCODER)
    torch.manual_seed(0)
    return ToyEncoder(ToyEncoderConfig()).eval()


def test_encoder_gets_a_masked_lm_head(toy_encoder: nn.Module, tmp_path: Path) -> None:
    hf = lmhub.hf.to_hf_api(toy_encoder)
    assert type(hf) is lmhub.hf.adapters.LmhubForMaskedLM
    assert not hf.can_generate()
    ids = torch.randint(1, 64, (2, 8))
    labels = torch.full_like(ids, -100)
    labels[0, 2], labels[1, 5] = 7, 9
    out = hf(ids, labels=labels)
    logits = toy_encoder(ids)
    torch.testing.assert_close(out.logits, logits, rtol=0, atol=0)
    manual = F.cross_entropy(torch.stack([logits[0, 2], logits[1, 5]]), torch.tensor([7, 9]))
    torch.testing.assert_close(out.loss, manual, rtol=1e-6, atol=1e-6)  # no shift

    lmhub.hf.register()
    hf.save_pretrained(tmp_path)
    loaded = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path)
    torch.testing.assert_close(loaded(ids).logits, logits, rtol=0, atol=0)


def test_encoder_sequence_classification_pools_the_first_token(toy_encoder: nn.Module) -> None:
    hf = lmhub.hf.to_hf_api(toy_encoder, task="sequence_classification", num_labels=1)
    ids = torch.randint(1, 64, (3, 6))
    mask = torch.ones_like(ids)
    mask[2, 4:] = 0
    out = hf(ids, attention_mask=mask, labels=torch.tensor([0.5, -1.0, 2.0]))
    first = toy_encoder(ids, attention_mask=mask, return_hidden=True)[:, 0]
    torch.testing.assert_close(out.logits, hf.lm_head(first), rtol=1e-6, atol=1e-6)
    assert hf.config.problem_type == "regression"
    torch.testing.assert_close(
        out.loss, F.mse_loss(out.logits.squeeze(-1), torch.tensor([0.5, -1.0, 2.0]))
    )
