"""Tiny random Hugging Face encoder-decoders (T5, M2M100), saved to disk, for the parity tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

VOCAB = 120
PAD = {"t5": 0, "m2m_100": 1}
"""The padding id of each tiny model (T5: 0, which also starts the decoder; M2M100: 1)."""

EOS = {"t5": 1, "m2m_100": 2}

TINY: dict[str, dict[str, Any]] = {
    "t5": dict(
        vocab_size=VOCAB,
        d_model=64,
        d_kv=16,
        d_ff=96,
        num_layers=2,
        num_decoder_layers=3,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=20,
        feed_forward_proj="gated-gelu",
        dropout_rate=0.0,
        tie_word_embeddings=False,
        initializer_factor=0.2,  # keeps the tied head's logits near 1, so 1e-5 is meaningful
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    ),
    "m2m_100": dict(
        vocab_size=VOCAB,
        d_model=64,
        encoder_layers=2,
        decoder_layers=3,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=96,
        decoder_ffn_dim=96,
        max_position_embeddings=64,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        encoder_layerdrop=0.0,
        decoder_layerdrop=0.0,
        scale_embedding=True,
        init_std=0.2,  # embeddings that outweigh the sinusoids, so outputs depend on the tokens
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
    ),
}

CLASSES = {
    "t5": ("T5Config", "T5ForConditionalGeneration"),
    "m2m_100": ("M2M100Config", "M2M100ForConditionalGeneration"),
}


def save_tiny_seq2seq(
    directory: Path,
    model_type: str,
    *,
    seed: int = 0,
    untied: bool = False,
    bias_scale: float = 0.5,
    **overrides: Any,
) -> Any:
    """Build a tiny random HF encoder-decoder of ``model_type``, save it to ``directory`` and
    return it (eval). Biases (uniform in +-``bias_scale``) and norms are randomised too, so a
    missed one shows.

    ``untied`` writes a separate random ``lm_head.weight`` (T5 v1.1's layout; transformers v5
    builds T5 tied and unties it on load when the checkpoint holds both) and reloads the model.
    """
    import transformers
    from safetensors.torch import load_file, save_file

    config_name, model_name = CLASSES[model_type]
    config = getattr(transformers, config_name)(**{**TINY[model_type], **overrides})
    torch.manual_seed(seed)
    model = getattr(transformers, model_name)(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.uniform_(-bias_scale, bias_scale) if name.endswith("bias") else p.uniform_(
                    0.5, 1.5
                )
    model.save_pretrained(directory)
    if not untied:
        return model
    path = directory / "model.safetensors"
    tensors = load_file(path)
    tensors["lm_head.weight"] = torch.randn_like(tensors["shared.weight"]) * 0.05
    save_file(tensors, path, metadata={"format": "pt"})
    config_path = directory / "config.json"
    data = json.loads(config_path.read_text())
    data["tie_word_embeddings"] = False
    config_path.write_text(json.dumps(data))
    model = getattr(transformers, model_name).from_pretrained(directory).eval()
    assert model.lm_head.weight is not model.get_input_embeddings().weight
    return model


def random_ids(model_type: str, batch: int, seq: int, *, seed: int = 0) -> torch.Tensor:
    """Token ids that avoid the padding, EOS and start ids (ids 0-3)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(4, VOCAB, (batch, seq), generator=g)
