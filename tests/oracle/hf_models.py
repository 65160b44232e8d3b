"""Builders of tiny random Hugging Face models, saved to disk, for the parity tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

HF_CLASSES: dict[str, tuple[str, str]] = {
    "llama": ("LlamaConfig", "LlamaForCausalLM"),
    "mistral": ("MistralConfig", "MistralForCausalLM"),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
    "gemma": ("GemmaConfig", "GemmaForCausalLM"),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM"),
    "gemma3_text": ("Gemma3TextConfig", "Gemma3ForCausalLM"),
    "gemma4_text": ("Gemma4TextConfig", "Gemma4ForCausalLM"),
    "gpt2": ("GPT2Config", "GPT2LMHeadModel"),
    "gpt_neox": ("GPTNeoXConfig", "GPTNeoXForCausalLM"),
    "phi3": ("Phi3Config", "Phi3ForCausalLM"),
    "granite": ("GraniteConfig", "GraniteForCausalLM"),
    "olmo2": ("Olmo2Config", "Olmo2ForCausalLM"),
    "olmo3": ("Olmo3Config", "Olmo3ForCausalLM"),
    "smollm3": ("SmolLM3Config", "SmolLM3ForCausalLM"),
    "deepseek_v3": ("DeepseekV3Config", "DeepseekV3ForCausalLM"),
    "qwen3_5_text": ("Qwen3_5TextConfig", "Qwen3_5ForCausalLM"),
    "qwen3_5_moe_text": ("Qwen3_5MoeTextConfig", "Qwen3_5MoeForCausalLM"),
    "mixtral": ("MixtralConfig", "MixtralForCausalLM"),
    "qwen3_moe": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM"),
    "gpt_oss": ("GptOssConfig", "GptOssForCausalLM"),
}
"""HF model_type -> (config class, causal-LM class) in transformers."""

UNIT_OFFSET_NORMS: frozenset[str] = frozenset({"gemma", "gemma2", "gemma3_text"})
"""The model types whose RMSNorms scale by ``1 + weight`` (the weight is an offset from one)."""

TINY_FIELDS: dict[str, Any] = dict(
    vocab_size=160,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)
"""The shape of every tiny random HF model (overridable per test)."""

TINY_FIELDS_BY_TYPE: dict[str, dict[str, Any]] = {
    # GPT-2 spells the shape its own way and has no GQA or RMSNorm.
    "gpt2": dict(vocab_size=160, n_embd=64, n_inner=96, n_layer=2, n_head=4, n_positions=64),
    "gpt_neox": dict(
        vocab_size=160,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    ),
    # SmolLM3's default token ids lie beyond the tiny vocabulary.
    "smollm3": {**TINY_FIELDS, "pad_token_id": None, "bos_token_id": 1, "eos_token_id": 2},
}
"""The tiny shape of model types whose config does not take :data:`TINY_FIELDS`."""


def save_tiny_hf(
    directory: Path,
    model_type: str = "llama",
    *,
    seed: int = 0,
    safe: bool = True,
    max_shard_size: str | None = None,
    dtype: torch.dtype = torch.float32,
    bias_scale: float = 0.5,
    **overrides: Any,
) -> Any:
    """Create a tiny random HF causal LM of ``model_type``, save it to ``directory`` and return
    it (eval). Biases are drawn from uniform(-bias_scale, bias_scale)."""
    import transformers

    config_name, model_name = HF_CLASSES[model_type]
    config_cls = getattr(transformers, config_name)
    model_cls = getattr(transformers, model_name)
    fields = {**TINY_FIELDS_BY_TYPE.get(model_type, TINY_FIELDS), **overrides}
    torch.manual_seed(seed)
    model = model_cls(config_cls(**fields)).to(dtype).eval()
    # Random norms and biases too, so that a mixed-up key cannot pass unnoticed. Norm scales
    # lie in [0.5, 1.5] in every family, whether stored as such or as an offset from one.
    offset = 1.0 if model_type in UNIT_OFFSET_NORMS else 0.0
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or ".ln_" in name:  # GPT-2 names its LayerNorms ln_1, ln_2, ln_f
                p.uniform_(0.5 - offset, 1.5 - offset)
            elif name.endswith(".bias"):
                p.uniform_(-bias_scale, bias_scale)
    kwargs: dict[str, Any] = {}
    if max_shard_size:
        kwargs["max_shard_size"] = max_shard_size
    model.save_pretrained(directory, **kwargs)
    if not safe:
        _convert_to_pytorch_bins(directory)
    return model


def save_tiny_hf_llama(directory: Path, **kwargs: Any) -> Any:
    """Create a tiny random ``LlamaForCausalLM``, save it to ``directory`` and return it (eval)."""
    return save_tiny_hf(directory, "llama", **kwargs)


def _convert_to_pytorch_bins(directory: Path) -> None:
    """Rewrite a safetensors save as PyTorch .bin files in the same (sharded) HF layout.

    transformers 5 always writes safetensors, but older checkpoints in the wild are pickles.
    """
    import json

    from safetensors.torch import load_file

    index = directory / "model.safetensors.index.json"
    if index.is_file():
        data = json.loads(index.read_text())
        renames = {
            f: f.replace("model-", "pytorch_model-").replace(".safetensors", ".bin")
            for f in set(data["weight_map"].values())
        }
        for src, dst in renames.items():
            torch.save(load_file(directory / src), directory / dst)
            (directory / src).unlink()
        data["weight_map"] = {k: renames[v] for k, v in data["weight_map"].items()}
        (directory / "pytorch_model.bin.index.json").write_text(json.dumps(data))
        index.unlink()
    else:
        torch.save(load_file(directory / "model.safetensors"), directory / "pytorch_model.bin")
        (directory / "model.safetensors").unlink()
