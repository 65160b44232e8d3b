"""OLMo 3 <-> Hugging Face: the config.json mapping (the checkpoint layout is OLMo 2's).

OLMo 3 has a RoPE per kind of layer. transformers 4 spells it ``rope_theta`` + ``rope_scaling``
(the scaling on the full layers only); transformers 5 nests one ``rope_parameters`` dict per
layer type. Both are read; both are written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lmhub.errors import ConfigError
from lmhub.models.gemma2.interop import gemma_windows_from_hf, gemma_windows_to_hf
from lmhub.models.hf_dir import shown
from lmhub.models.llama.interop import (
    decoder_config_from_hf,
    decoder_config_to_hf,
    drop_derived_head_dim,
    rope_from_hf,
    rope_to_hf,
)
from lmhub.models.olmo2.interop import OLMO2_HF_DEFAULTS, OLMO2_HF_FIXED, OLMO2_OWN_KNOBS
from lmhub.models.olmo3.config import OLMO3_PERIOD, Olmo3Config
from lmhub.nn.rope import RopeScaling

OLMO3_DEFAULT_THETA: Final = 500_000.0
"""The RoPE base transformers' OLMo 3 assumes where a config names none."""

_ROPE_KEYS: Final = ("rope_theta", "rope_scaling", "rope_parameters")


def olmo3_rope_from_hf(hf: Mapping[str, Any]) -> tuple[float, RopeScaling | None, float | None]:
    """Return ``(theta, scaling, local theta)`` of an OLMo 3 ``config.json``: the full layers'
    RoPE, and the sliding layers' base (``None`` when they rotate as the full layers do).

    As transformers 5 reads it: a flat ``rope_theta`` / ``rope_scaling`` goes to the full layers,
    and the sliding layers then keep plain RoPE of base 500000.

    Raises:
        ConfigError: naming the key of an ill-typed value, or a scaled sliding-layer RoPE.
    """
    max_len = {"max_position_embeddings": hf.get("max_position_embeddings")}
    params = hf.get("rope_parameters")
    nested = isinstance(params, dict) and {"full_attention", "sliding_attention"} & params.keys()
    full: dict[str, Any] = {"rope_theta": hf.get("rope_theta") or OLMO3_DEFAULT_THETA}
    sliding: Any = {"rope_theta": OLMO3_DEFAULT_THETA}
    if nested:
        assert isinstance(params, dict)
        full = {"rope_theta": OLMO3_DEFAULT_THETA, **(params.get("full_attention") or {})}
        sliding = {"rope_theta": OLMO3_DEFAULT_THETA, **(params.get("sliding_attention") or {})}
    elif isinstance(params, dict):
        full.update(params)
    if hf.get("rope_scaling"):  # transformers 5 lays it over the full layers' RoPE
        full.update(hf["rope_scaling"])
    theta, scaling = rope_from_hf({"rope_parameters": full, **max_len})
    if not isinstance(sliding, dict) or sliding.get("rope_type", "default") != "default":
        if rope_from_hf({"rope_parameters": sliding, **max_len}) == (theta, scaling):
            return theta, scaling, None
        raise ConfigError(
            "The key 'rope_parameters.sliding_attention' is "
            f"{shown(sliding)}, but lmhub's OLMo 3 supports only plain RoPE on the sliding "
            "layers, or the full layers' RoPE.",
            field="rope_parameters.sliding_attention",
            value=sliding,
        )
    local, _ = rope_from_hf({"rope_parameters": sliding})
    return theta, scaling, None if scaling is None and local == theta else local


def olmo3_config_from_hf(hf: Mapping[str, Any]) -> Olmo3Config:
    """Build an :class:`Olmo3Config` from a Hugging Face OLMo 3 ``config.json`` dict.

    Raises:
        ConfigError: naming the ``config.json`` key (``field``) of a missing or ill-typed value.
    """
    theta, scaling, local = olmo3_rope_from_hf(hf)
    # The full layers' RoPE goes back in the flat spelling the shared reader understands.
    flat = {k: v for k, v in hf.items() if k not in _ROPE_KEYS}
    flat.update(rope_to_hf(theta, scaling))
    windows = gemma_windows_from_hf(hf, period=OLMO3_PERIOD, family="OLMo 3")
    return decoder_config_from_hf(
        flat,
        Olmo3Config,
        defaults=OLMO2_HF_DEFAULTS,
        fixed={**OLMO2_HF_FIXED, **windows, "rope_local_theta": local},
    )


def olmo3_config_to_hf(config: Olmo3Config) -> dict[str, Any]:
    """Build a Hugging Face OLMo 3 ``config.json`` dict (without model_type/architectures),
    readable by transformers 4 and 5.

    Raises:
        ConfigError: if the config uses a knob transformers' OLMo 3 lacks.
    """
    hf = decoder_config_to_hf(
        config,
        fixed=OLMO2_HF_FIXED,
        model_type="olmo3",
        own=(*OLMO2_OWN_KNOBS, "rope_local_theta"),
    )
    full = hf["rope_parameters"]
    local = config.rope_local_theta
    sliding = full if local is None else rope_to_hf(local, None)["rope_parameters"]
    if local is None and config.rope_scaling is not None:
        del hf["rope_scaling"]  # transformers 4 would leave the sliding layers unscaled
    hf["rope_parameters"] = {"full_attention": full, "sliding_attention": sliding}
    return drop_derived_head_dim({**hf, **gemma_windows_to_hf(config)})
