"""lmhub.hf.export: native Hugging Face directories (transformers is the oracle), tokenizer files,
and the output directory rules (atomic, identical contents left alone, --refresh)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import lmhub
import lmhub.hf
from lmhub.checkpoint.save_load import model_tensors
from lmhub.data.tokenizers import ByteTokenizer, Gpt2BpeTokenizer, SentencePieceTokenizer
from tests.fixtures import GPT2_MERGES, GPT2_VOCAB, SENTENCEPIECE_VOCAB_SIZE

CHAT = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{{ eos_token }}{% endfor %}"


def _llama(seed: int = 0, *, meta: bool = False, **overrides: Any) -> Any:
    torch.manual_seed(seed)
    hub = lmhub.get_model_hub("llama")
    config = lmhub.apply_overrides(
        hub.get_arch_config("llama_tiny"), {"num_layers": 2, **overrides}
    )
    return hub.create_new_model(config, meta=meta).eval()


def _ids(vocab: int = 259) -> torch.Tensor:
    return torch.randint(0, vocab, (2, 11), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    ("overrides", "shard"),
    [({}, "5GB"), ({"tie_embeddings": True, "attn_bias": True}, "400KB")],
    ids=["untied", "tied-biased-sharded"],
)
def test_native_llama_loads_in_transformers_without_remote_code(
    tmp_path: Path, overrides: dict[str, Any], shard: str
) -> None:
    from transformers import AutoModelForCausalLM

    model = _llama(**overrides)
    result = lmhub.hf.export(model, tmp_path / "out", max_shard_size=shard)
    assert result.kind == "native" and result.weights and result.changed
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["model_type"] == "llama" and config["architectures"] == ["LlamaForCausalLM"]
    assert config["dtype"] == "float32"
    generation = json.loads((tmp_path / "out" / "generation_config.json").read_text())
    assert generation == {"bos_token_id": 256, "eos_token_id": 257, "pad_token_id": 258}
    if shard != "5GB":
        assert (tmp_path / "out" / "model.safetensors.index.json").is_file()
    assert not any(name.endswith(".py") for name in result.files)

    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    ids = _ids()
    with torch.no_grad():
        assert (hf(ids).logits - model(ids)).abs().max().item() <= 1e-5
    # The state dicts agree exactly, under Hugging Face names.
    ours = dict(
        lmhub.get_family("llama").weight_map.convert_to_external(model_tensors(model)[0].items())
    )
    theirs = {k: v for k, v in hf.state_dict().items() if k in ours}
    assert theirs.keys() == ours.keys()
    assert all(torch.equal(theirs[k], ours[k]) for k in ours)
    if overrides.get("tie_embeddings"):
        assert hf.lm_head.weight is hf.model.embed_tokens.weight

    back = lmhub.load_model(tmp_path / "out").eval()
    with torch.no_grad():
        assert torch.equal(back(ids), model(ids))


def test_native_export_in_bfloat16_and_as_pytorch_bin(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = _llama().to(torch.bfloat16)
    result = lmhub.hf.export(model, tmp_path / "bin", safetensors=False)
    assert "pytorch_model.bin" in result.files and "model.safetensors" not in result.files
    assert json.loads((tmp_path / "bin" / "config.json").read_text())["dtype"] == "bfloat16"
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "bin").eval()
    assert hf.dtype == torch.bfloat16
    ids = _ids()
    ours = lmhub.get_family("llama").weight_map.convert_to_external(model_tensors(model)[0].items())
    theirs = hf.state_dict()
    assert all(torch.equal(theirs[k], v) for k, v in ours)  # the same bf16 weights, exactly
    with torch.no_grad():
        assert (hf(ids).logits.float() - model(ids).float()).abs().max().item() < 0.1


def test_meta_model_exports_config_only(tmp_path: Path) -> None:
    meta = _llama(meta=True)
    result = lmhub.hf.export(meta, tmp_path / "native")
    assert result.files == ("config.json", "generation_config.json") and not result.weights
    with pytest.raises(lmhub.ExportError, match="meta device"):
        lmhub.hf.export(meta, tmp_path / "x", save_weights=True)
    assert not (tmp_path / "x").exists()


def test_existing_directory_rules(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = lmhub.hf.export(_llama(seed=0), out)
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    again = lmhub.hf.export(_llama(seed=0), out)
    assert not again.changed
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp  # left alone
    with pytest.raises(lmhub.ExportError, match=r"different contents.*--refresh"):
        lmhub.hf.export(_llama(seed=1), out)
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
    replaced = lmhub.hf.export(_llama(seed=1), out, overwrite=True)
    assert replaced.changed and replaced.files == first.files
    assert (out / "model.safetensors").read_bytes() != b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging left behind
    (tmp_path / "file").write_text("x")
    with pytest.raises(lmhub.ExportError, match="is a file"):
        lmhub.hf.export(_llama(), tmp_path / "file")


def test_family_choice_errors(tmp_path: Path) -> None:
    hub = lmhub.get_model_hub("deepone")
    deepone = hub.create_new_model(hub.get_arch_config("deepone_tiny"), meta=True)
    with pytest.raises(lmhub.ExportError, match="no Hugging Face counterpart"):
        lmhub.hf.export(deepone, tmp_path / "d", remote_code=False)
    assert lmhub.hf.export(deepone, tmp_path / "d").kind == "remote_code"
    with pytest.raises(lmhub.ExportError, match="no registered model family"):
        lmhub.hf.export(torch.nn.Linear(2, 2), tmp_path / "x")


def test_read_exported_config_round_trips_both_kinds(tmp_path: Path) -> None:
    model = _llama(meta=True, rope_scaling={"kind": "linear", "factor": 2.0})
    lmhub.hf.export(model, tmp_path / "native")
    lmhub.hf.export(model, tmp_path / "remote", remote_code=True)
    for name in ("native", "remote"):
        family, config, dtype = lmhub.hf.read_exported_config(tmp_path / name)
        assert family.name == "llama" and dtype == torch.float32
        expected = lmhub.to_dict(model.config)
        if name == "native":
            expected["head_dim"] = 32  # Hugging Face configs spell out the resolved width
        assert lmhub.to_dict(config) == expected, name
    remote = json.loads((tmp_path / "remote" / "config.json").read_text())
    # Names transformers reserves are prefixed; the rest are lmhub's own field names.
    assert remote["lmhub_rope_scaling"]["factor"] == 2.0 and "rope_scaling" not in remote
    assert remote["model_dim"] == 256 and remote["lmhub_family"] == "llama"
    assert remote["auto_map"] == {
        "AutoConfig": "configuration_lmhub_llama.LmhubLlamaConfig",
        "AutoModelForCausalLM": "modeling_lmhub_llama.LmhubLlamaForCausalLM",
    }


# -- tokenizers -------------------------------------------------------------------------------


def test_byte_tokenizer_and_chat_template(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    model = _llama(meta=True, bos_token_id=1, eos_token_id=2, pad_token_id=None)
    tok = ByteTokenizer(chat_template=CHAT)
    result = lmhub.hf.export(model, tmp_path / "out", tokenizer=tok)
    assert {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"} <= set(result.files)
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert (config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]) == (
        256,
        257,
        258,
    )  # taken from the tokenizer
    hf = AutoTokenizer.from_pretrained(tmp_path / "out")
    text = "Héllo <|eos|> wörld\n\t€"
    assert hf.encode(text, add_special_tokens=False) == tok.encode(text)
    assert (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id) == (256, 257, 258)
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    assert hf.apply_chat_template(messages, tokenize=False) == tok.apply_chat_template(
        messages, add_generation_prompt=False
    )


def test_tokenizer_larger_than_the_vocabulary_is_an_error(tmp_path: Path) -> None:
    model = _llama(meta=True, vocab_size=200)
    with pytest.raises(lmhub.ExportError, match="259 tokens but the model only 200"):
        lmhub.hf.export(model, tmp_path / "out", tokenizer="byte")


def test_gpt2_and_sentencepiece_tokenizers(tmp_path: Path, sp_model_file: Path) -> None:
    # GPT-2's real BPE files (tests/fixtures) and a Llama-style SentencePiece model trained on
    # the fixture text.
    from transformers import AutoTokenizer

    text = "Before we proceed any further, hear me speak."
    gpt2 = Gpt2BpeTokenizer(GPT2_VOCAB, GPT2_MERGES)
    lmhub.hf.export(_llama(meta=True, vocab_size=50304), tmp_path / "gpt2", tokenizer=gpt2)
    hf = AutoTokenizer.from_pretrained(tmp_path / "gpt2")
    assert hf.encode(text, add_special_tokens=False) == gpt2.encode(text)
    assert hf.eos_token_id == 50256

    sp = SentencePieceTokenizer(sp_model_file)
    model = _llama(meta=True, vocab_size=SENTENCEPIECE_VOCAB_SIZE)
    lmhub.hf.export(model, tmp_path / "sp", tokenizer=sp)
    hf = AutoTokenizer.from_pretrained(tmp_path / "sp")
    assert hf.encode(text, add_special_tokens=False) == sp.encode(text)
    assert hf.encode("Hello world") == [1, *sp.encode("Hello world")]  # BOS, as Llama 2


def test_reserved_names_cover_what_transformers_reserves() -> None:
    from transformers import GenerationConfig, PretrainedConfig

    from lmhub.models.hf_dir import HF_RESERVED_NAMES

    properties = {
        name
        for name in dir(PretrainedConfig)
        if not name.startswith("_") and isinstance(getattr(PretrainedConfig, name), property)
    }
    fields = set(PretrainedConfig.__dataclass_fields__)
    generation = set(GenerationConfig._get_default_generation_params())
    public_fields = {f for f in fields if not f.startswith("_")}
    assert properties | generation | public_fields <= HF_RESERVED_NAMES
