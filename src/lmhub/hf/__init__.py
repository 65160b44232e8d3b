"""Hugging Face interop: export lmhub models as directories transformers loads.

``import lmhub.hf`` does not import transformers; only the adapters (which remote-code exports
also carry a copy of) need it.

Example:
    >>> import lmhub.hf
    >>> lmhub.hf.export(model, "out/llama_tiny").kind
    'native'
"""

from lmhub.hf.export import ExportResult, export, find_family, read_exported_config

__all__ = [
    "ExportResult",
    "export",
    "find_family",
    "read_exported_config",
    "register",
    "to_hf_api",
]


def __getattr__(name: str) -> object:
    # The adapters (to_hf_api, register) import transformers: load them on first use only.
    if name in ("to_hf_api", "register"):
        from lmhub.hf import adapters

        return getattr(adapters, name)
    raise AttributeError(f"module 'lmhub.hf' has no attribute '{name}'")
