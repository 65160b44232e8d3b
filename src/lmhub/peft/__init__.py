"""Parameter-efficient fine-tuning: LoRA on any family, merged back or saved in PEFT's format.

Example:
    >>> from lmhub.peft import LoraConfig, apply_lora, merge_lora, save_adapter
    >>> model = apply_lora(lmhub.load_model("llama_tiny"), LoraConfig(rank=8, alpha=16))
    >>> ...  # train: only the adapters require grad
    >>> save_adapter(model, "out/adapter", base_model_name_or_path="meta-llama/Llama-3.2-1B")
    >>> merged = merge_lora(model)  # a plain model again, for lmhub.hf.export
"""

from lmhub.peft.apply import (
    apply_lora,
    load_trainable_state_dict,
    lora_layers,
    merge_lora,
    trainable_state_dict,
    unmerge_lora,
)
from lmhub.peft.config import DEFAULT_TARGETS, LoraConfig
from lmhub.peft.io import load_adapter, save_adapter
from lmhub.peft.layer import LoraLinear

__all__ = [
    "DEFAULT_TARGETS",
    "LoraConfig",
    "LoraLinear",
    "apply_lora",
    "load_adapter",
    "load_trainable_state_dict",
    "lora_layers",
    "merge_lora",
    "save_adapter",
    "trainable_state_dict",
    "unmerge_lora",
]
