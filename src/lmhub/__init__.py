"""lmhub: a PyTorch-native toolkit for language-model architectures.

Example:
    >>> import lmhub
    >>> lmhub.list_families()
    ['causal_lm', 'deepone', 'llama', 'single_head']
    >>> hub = lmhub.get_model_hub("llama")
    >>> model = hub.create_new_model(hub.get_arch_config("llama_tiny"))
"""

from lmhub.assets import AssetCard, AssetStore, register_cards
from lmhub.checkpoint.save_load import save_checkpoint
from lmhub.config import apply_overrides, from_dict, from_json, from_yaml, to_dict, to_json, to_yaml
from lmhub.data.packing import PackedDataset
from lmhub.data.sampler import ResumableSampler
from lmhub.data.sources import DataSource
from lmhub.data.split import train_valid_split
from lmhub.data.token_cache import tokenize_source
from lmhub.errors import (
    AssetCardError,
    ChecksumMismatchError,
    ConfigError,
    DataError,
    ExportError,
    LmhubError,
    ModelArchitectureNotKnownError,
    ModelCheckpointError,
    ModelFamilyNotKnownError,
    ModelNotKnownError,
    StateDictMismatchError,
    TokenizerError,
)
from lmhub.models.archs import ArchRegistry
from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.hub import ModelHub, get_model_hub
from lmhub.models.materialize import load_checkpoint
from lmhub.models.registry import get_family, list_families, register_family
from lmhub.models.resolve import load_model
from lmhub.parallel.gangs import Gang, Gangs, fake_gangs
from lmhub.peft import LoraConfig, apply_lora, load_adapter, merge_lora, save_adapter
from lmhub.utils import default_dtype, no_init_weights

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Generation pulls in the nn blocks: import it on first use, to keep `import lmhub` fast.
    if name in ("GenerationOptions", "generate", "generate_stream"):
        from lmhub import generation

        return getattr(generation, name)
    raise AttributeError(f"module 'lmhub' has no attribute {name!r}")


__all__ = [
    "ArchRegistry",
    "AssetCard",
    "AssetCardError",
    "AssetStore",
    "ChecksumMismatchError",
    "ConfigError",
    "DataError",
    "DataSource",
    "ExportError",
    "Gang",
    "Gangs",
    "GenerationOptions",
    "HfInterop",
    "LmhubError",
    "LoraConfig",
    "ModelArchitectureNotKnownError",
    "ModelCheckpointError",
    "ModelFamily",
    "ModelFamilyNotKnownError",
    "ModelHub",
    "ModelNotKnownError",
    "PackedDataset",
    "ResumableSampler",
    "StateDictMismatchError",
    "TokenizerError",
    "__version__",
    "apply_lora",
    "apply_overrides",
    "default_dtype",
    "fake_gangs",
    "from_dict",
    "from_json",
    "from_yaml",
    "generate",
    "generate_stream",
    "get_family",
    "get_model_hub",
    "list_families",
    "load_adapter",
    "load_checkpoint",
    "load_model",
    "merge_lora",
    "no_init_weights",
    "register_cards",
    "register_family",
    "save_adapter",
    "save_checkpoint",
    "to_dict",
    "to_json",
    "to_yaml",
    "tokenize_source",
    "train_valid_split",
]
