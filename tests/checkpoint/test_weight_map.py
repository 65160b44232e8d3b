"""Weight maps: pattern matching, reversibility, tensor transforms, tied keys."""

from __future__ import annotations

import pytest
import torch

from lmhub.checkpoint.weight_map import KeyRule, WeightMap
from lmhub.models.llama.interop import LLAMA_WEIGHT_MAP
from tests.oracle.hf_models import save_tiny_hf_llama


def test_llama_map_round_trips_every_hf_key(tmp_path) -> None:
    hf = save_tiny_hf_llama(tmp_path, attention_bias=True, mlp_bias=True)
    for key in hf.state_dict():
        native = LLAMA_WEIGHT_MAP.to_native(key)
        assert native is not None, key
        assert LLAMA_WEIGHT_MAP.to_external(native) == key


def test_llama_map_covers_the_native_model() -> None:
    from lmhub.models.llama import get_llama_model_hub

    hub = get_llama_model_hub()
    model = hub.create_new_model(hub.get_arch_config("llama_tiny"), meta=True)
    pairs = list(LLAMA_WEIGHT_MAP.convert_to_external(model.state_dict().items()))
    assert len(pairs) == len(model.state_dict())
    assert all(k.startswith(("model.", "lm_head.")) for k, _ in pairs)


def test_path_placeholders_and_unmatched_keys() -> None:
    wm = WeightMap([KeyRule("encoder.{rest:path}", "enc.{rest}")])
    assert wm.to_native("encoder.layers.0.fc.weight") == "enc.layers.0.fc.weight"
    assert wm.to_external("enc.a.b") == "encoder.a.b"
    assert wm.to_native("decoder.x") is None
    with pytest.raises(KeyError, match="no rule"):
        list(wm.convert_to_external([("dec.x", torch.zeros(1))]))


def test_transforms_are_applied_both_ways() -> None:
    rule = KeyRule("w", "v", to_native_fn=lambda t: t.t(), to_external_fn=lambda t: t.t())
    wm = WeightMap([rule])
    x = torch.arange(6.0).view(2, 3)
    ((key, native, original),) = wm.convert_to_native([("w", x)])
    assert key == "v" and original == "w" and torch.equal(native, x.t())
    ((key, back),) = wm.convert_to_external([("v", native)])
    assert key == "w" and torch.equal(back, x)


def test_tied_aliases_are_dropped_on_export() -> None:
    pairs = [("embed.weight", torch.zeros(2)), ("lm_head.weight", torch.zeros(2))]
    keys = [k for k, _ in LLAMA_WEIGHT_MAP.convert_to_external(pairs, tied=True)]
    assert keys == ["model.embed_tokens.weight"]


def test_native_keys_pass_through() -> None:
    items = [("final_norm.weight", torch.ones(1)), ("model.norm.weight", torch.ones(1))]
    out = list(LLAMA_WEIGHT_MAP.convert_to_native(items, native_keys={"final_norm.weight"}))
    assert [k for k, _, _ in out] == ["final_norm.weight", "final_norm.weight"]
