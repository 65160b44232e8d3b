"""PEFT-format adapter directories without the peft package: round trips on every family, and
the errors a bad directory gets (each naming the file and the key)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file
from torch import nn

from lmhub.errors import AdapterError, StateDictMismatchError
from lmhub.peft import LoraConfig, apply_lora, load_adapter, lora_layers, save_adapter
from lmhub.peft.apply import linear_names
from tests.models.test_family_contract import FAMILIES, small_model

PREFIX = "base_model.model."


def tiny(family: str = "llama") -> nn.Module:
    torch.manual_seed(0)
    return small_model(family).eval()


# Families whose HF layout fuses or transposes some projections: the layers PEFT can name.
PEFT_EXPRESSIBLE = {
    "gpt_neox": ["o_proj", "fc1", "fc2"],
    # Phi-3 fuses q/k/v into qkv_proj and gate/up into gate_up_proj.
    "phi3": ["o_proj", "down_proj"],
    # ModernBERT fuses q/k/v into Wqkv and gate/up into Wi.
    "modernbert": ["o_proj", "down_proj"],
}
# Every linear layer of GPT-2 is a transposed Conv1D on the HF side (PEFT's fan_in_fan_out).
NO_PEFT_LAYOUT = {"gpt2"}


def adapted(family: str = "llama", **config: Any) -> nn.Module:
    model = apply_lora(tiny(family), LoraConfig(rank=4, alpha=8, **config))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in lora_layers(model).values():
            layer.lora_B.weight.copy_(torch.randn(layer.lora_B.weight.shape, generator=gen))
            if layer.lora_magnitude_vector is not None:
                m = layer.lora_magnitude_vector
                m.mul_(torch.rand(m.shape, generator=gen) + 0.5)
    return model


def ids() -> torch.Tensor:
    return torch.randint(0, 90, (2, 10), generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
@pytest.mark.parametrize("family", [f for f in FAMILIES if f not in NO_PEFT_LAYOUT])
def test_round_trip_on_every_family(tmp_path: Path, family: str, dora: bool) -> None:
    targets = PEFT_EXPRESSIBLE.get(family, [])
    model = adapted(family, use_rslora=True, use_dora=dora, targets=targets)
    save_adapter(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    again = load_adapter(tiny(family), tmp_path)
    assert list(lora_layers(again)) == list(lora_layers(model))
    layer = next(iter(lora_layers(again).values()))
    assert (layer.rank, layer.alpha, layer.use_rslora, layer.use_dora) == (4, 8, True, dora)
    with torch.no_grad():
        assert torch.equal(again(ids()), model(ids()))


@pytest.mark.parametrize("family", sorted({*PEFT_EXPRESSIBLE, *NO_PEFT_LAYOUT}))
def test_layers_fused_or_transposed_on_the_hf_side_are_refused(tmp_path: Path, family: str) -> None:
    # GPT-2's c_attn holds q, k and v (and is a transposed Conv1D); GPT-NeoX's query_key_value
    # interleaves them per head: PEFT adapts such a tensor as one layer, lmhub's q_proj alone
    # has no PEFT name.
    with pytest.raises(AdapterError, match=r"no Hugging Face layer of its own") as info:
        save_adapter(adapted(family, targets=["q_proj"]), tmp_path)
    assert info.value.key is not None and info.value.key.endswith("attn.q_proj")
    assert not (tmp_path / "adapter_model.safetensors").exists()


def test_families_without_hf_use_the_remote_code_names(tmp_path: Path) -> None:
    save_adapter(adapted("causal_lm", targets=["layers.0.attn.q_proj"]), tmp_path)
    assert sorted(load_file(tmp_path / "adapter_model.safetensors")) == [
        f"{PREFIX}decoder.model.layers.0.attn.q_proj.lora_A.weight",
        f"{PREFIX}decoder.model.layers.0.attn.q_proj.lora_B.weight",
    ]
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["target_modules"] == ["decoder.model.layers.0.attn.q_proj"]


def test_a_bf16_adapter_loads_into_an_fp32_model(tmp_path: Path) -> None:
    model = adapted()
    save_adapter(model, tmp_path)
    weights = tmp_path / "adapter_model.safetensors"
    save_file({k: v.bfloat16() for k, v in load_file(weights).items()}, weights)
    again = load_adapter(tiny(), tmp_path)
    layer = lora_layers(again)["layers.0.attn.q_proj"]
    assert layer.lora_B.weight.dtype == torch.float32
    torch.testing.assert_close(
        layer.lora_B.weight,
        lora_layers(model)["layers.0.attn.q_proj"].lora_B.weight.bfloat16().float(),
    )


# Every (layer, adapted or not) choice: `target_modules` selects exactly the adapted layers.
LLAMA = tiny()
LLAMA_LINEARS = linear_names(LLAMA)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sets(st.sampled_from(LLAMA_LINEARS), min_size=1))
def test_target_modules_select_exactly_the_adapted_layers(chosen: set[str]) -> None:
    import tempfile

    model = apply_lora(copy.deepcopy(LLAMA), LoraConfig(rank=2, targets=sorted(chosen)))
    with tempfile.TemporaryDirectory() as tmp:
        save_adapter(model, tmp)
        again = load_adapter(copy.deepcopy(LLAMA), tmp)
    assert set(lora_layers(again)) == chosen


# -- errors -------------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    save_adapter(adapted(targets=["q_proj", "v_proj"]), tmp_path)
    return tmp_path


def edit_config(directory: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = directory / "adapter_config.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def edit_weights(directory: Path, change: Callable[[dict[str, torch.Tensor]], None]) -> None:
    path = directory / "adapter_model.safetensors"
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path)


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("peft_type", "IA3", "loads only LoRA adapters"),
        ("task_type", "SEQ_CLS", "CAUSAL_LM"),
        ("lora_bias", True, "does not support yet"),
        ("use_dora", "yes", "true or false"),
        ("modules_to_save", ["lm_head"], "does not support yet"),
        ("rank_pattern", {"q_proj": 8}, "does not support yet"),
        ("bias", "all", 'supports only "none"'),
        ("r", "4", "a whole number"),
        ("r", 0, "a whole number"),
        ("lora_alpha", None, "a number"),
        ("lora_dropout", 1.5, "from 0 up to"),
        ("use_rslora", "yes", "true or false"),
        ("target_modules", [], "a module-name regex or a list"),
    ],
)
def test_bad_settings_name_the_file_and_key(
    saved: Path, key: str, value: object, says: str
) -> None:
    edit_config(saved, lambda d: d.__setitem__(key, value))
    with pytest.raises(AdapterError) as info:
        load_adapter(tiny(), saved)
    err = info.value
    assert err.key == key and err.path == saved / "adapter_config.json"
    assert says in str(err) and "adapter_config.json" in str(err) and f"'{key}'" in str(err)


def test_unknown_target_module_suggests_close_names(saved: Path) -> None:
    edit_config(saved, lambda d: d.__setitem__("target_modules", ["q_proj", "qproj"]))
    with pytest.raises(AdapterError) as info:
        load_adapter(tiny(), saved)
    assert info.value.key == "target_modules" and info.value.value == "qproj"
    assert "Did you mean 'q_proj'" in str(info.value) and "gate_proj" in str(info.value)


def test_regex_target_matching_nothing(saved: Path) -> None:
    edit_config(saved, lambda d: d.__setitem__("target_modules", r".*\.c_attn"))
    with pytest.raises(AdapterError, match="selects none of the model's linear layers"):
        load_adapter(tiny(), saved)


def test_missing_unexpected_and_misshaped_tensors_reported_together(saved: Path) -> None:
    q0 = f"{PREFIX}model.layers.0.self_attn.q_proj"

    def change(t: dict[str, torch.Tensor]) -> None:
        del t[f"{q0}.lora_A.weight"]
        t[f"{PREFIX}model.layers.0.self_attn.k_proj.lora_A.weight"] = torch.zeros(4, 64)
        t[f"{PREFIX}model.layers.0.self_attn.q_proj.lora_magnitude_vector"] = torch.zeros(64)
        t[f"{PREFIX}model.layers.1.self_attn.v_proj.lora_B.weight"] = torch.zeros(7, 4)

    edit_weights(saved, change)
    with pytest.raises(StateDictMismatchError) as info:
        load_adapter(tiny(), saved)
    err = info.value
    assert err.path == saved / "adapter_model.safetensors"
    assert err.missing == [f"{q0}.lora_A.weight"]
    assert sorted(err.unexpected) == [
        f"{PREFIX}model.layers.0.self_attn.k_proj.lora_A.weight",
        f"{q0}.lora_magnitude_vector",
    ]
    assert err.shape_mismatches == [
        (f"{PREFIX}model.layers.1.self_attn.v_proj.lora_B.weight", (32, 4), (7, 4))
    ]


def test_rank_mismatch_names_r(saved: Path) -> None:
    edit_config(saved, lambda d: d.__setitem__("r", 8))
    with pytest.raises(AdapterError) as info:
        load_adapter(tiny(), saved)
    assert info.value.path == saved / "adapter_model.safetensors"
    assert "has rank 4, but the key 'r'" in str(info.value) and "says 8" in str(info.value)


def test_missing_files(tmp_path: Path, saved: Path) -> None:
    with pytest.raises(AdapterError, match=r"has no adapter_config\.json") as info:
        load_adapter(tiny(), tmp_path / "nowhere")
    assert info.value.path == tmp_path / "nowhere" / "adapter_config.json"
    (saved / "adapter_model.safetensors").rename(saved / "adapter_model.bin")
    with pytest.raises(AdapterError, match="reads only safetensors"):
        load_adapter(tiny(), saved)
    (saved / "adapter_config.json").write_text("{not json")
    with pytest.raises(AdapterError, match="is not valid JSON"):
        load_adapter(tiny(), saved)


def test_loading_into_an_adapted_model_is_refused(saved: Path) -> None:
    with pytest.raises(AdapterError, match="already has LoRA layers"):
        load_adapter(adapted(), saved)


def test_saving_without_lora_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="has no LoRA layers"):
        save_adapter(tiny(), tmp_path)
    assert not any(tmp_path.iterdir())


def test_import_lmhub_imports_neither_peft_nor_transformers() -> None:
    code = (
        "import sys, lmhub, lmhub.peft; "
        "print(sorted(m for m in ('peft', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_a_row_transform_of_the_weight_map_applies_to_b_and_the_magnitude(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A family whose HF layout permutes q_proj's rows (as a RoPE layout change would)."""
    import dataclasses

    from lmhub.checkpoint.weight_map import KeyRule, WeightMap
    from lmhub.models import registry
    from lmhub.models.llama.model import LlamaModel

    llama = registry.get_family("llama")

    class FlippedLlama(LlamaModel):
        pass

    def flip(t: torch.Tensor) -> torch.Tensor:
        return t.flip(0)

    rules = [
        KeyRule(
            "model.layers.{i}.self_attn.q_proj.weight", "layers.{i}.attn.q_proj.weight", flip, flip
        ),
        *llama.weight_map.rules,
    ]
    family = dataclasses.replace(
        llama,
        name="flipped_llama",
        model_class=FlippedLlama,
        builder=FlippedLlama,
        weight_map=WeightMap(rules, tied=llama.weight_map.tied),
    )
    monkeypatch.setitem(registry._families, family.name, family)
    torch.manual_seed(0)
    model = FlippedLlama(tiny().config).eval()
    base = copy.deepcopy(model)
    apply_lora(model, LoraConfig(rank=2, targets=["q_proj", "k_proj"], use_dora=True))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in lora_layers(model).values():
            layer.lora_B.weight.copy_(torch.randn(layer.lora_B.weight.shape, generator=gen))
            assert layer.lora_magnitude_vector is not None
            layer.lora_magnitude_vector.mul_(torch.rand(layer.out_features, generator=gen) + 0.5)
    save_adapter(model, tmp_path)
    saved = load_file(tmp_path / "adapter_model.safetensors")
    q = lora_layers(model)["layers.0.attn.q_proj"]
    k = lora_layers(model)["layers.0.attn.k_proj"]
    hf_q = f"{PREFIX}model.layers.0.self_attn.q_proj"
    hf_k = f"{PREFIX}model.layers.0.self_attn.k_proj"
    assert torch.equal(saved[f"{hf_q}.lora_B.weight"], q.lora_B.weight.flip(0))
    assert q.lora_magnitude_vector is not None
    assert torch.equal(saved[f"{hf_q}.lora_magnitude_vector"], q.lora_magnitude_vector.flip(0))
    assert torch.equal(saved[f"{hf_q}.lora_A.weight"], q.lora_A.weight)  # input side: unchanged
    assert torch.equal(saved[f"{hf_k}.lora_B.weight"], k.lora_B.weight)
    again = load_adapter(base, tmp_path)
    with torch.no_grad():
        assert torch.equal(again(ids()), model(ids()))
