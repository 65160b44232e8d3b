"""Adapters round-trip with PEFT on transformers' LlamaForCausalLM (the oracle), both ways.

A tiny random Llama is built and saved in-test; lmhub loads the same weights. Logits of the
adapted (or merged) models must agree within fp32 tolerance.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lmhub
from lmhub.hf.export import export
from lmhub.peft import LoraConfig, apply_lora, load_adapter, lora_layers, merge_lora, save_adapter
from lmhub.peft.io import _peft_matches
from tests.oracle.hf_models import save_tiny_hf_llama

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

ATOL = 1e-5


def ids() -> torch.Tensor:
    return torch.randint(0, 160, (2, 14), generator=torch.Generator().manual_seed(5))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def randomise(params: list[torch.Tensor], seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


def lmhub_adapted(base_dir: Path, config: LoraConfig) -> torch.nn.Module:
    model = apply_lora(lmhub.load_model(base_dir).eval(), config)
    randomise([p for n, p in model.named_parameters() if ".lora_" in n and "magnitude" not in n])
    perturb_magnitudes(model)
    return model


def perturb_magnitudes(model: torch.nn.Module) -> None:
    """Move DoRA magnitudes off their initial row norms (where DoRA would equal LoRA)."""
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_magnitude_vector" in name:
                p.mul_(torch.rand(p.shape, generator=gen) + 0.5)


@pytest.mark.parametrize(
    ("variant", "targets", "hf_overrides"),
    [
        ("lora", [], {}),
        ("rslora", [], {}),
        ("dora", [], {"attention_bias": True}),
        ("lora", ["q_proj", "v_proj", "lm_head"], {}),
        ("lora", ["layers.1.attn.o_proj", "up_proj"], {"attention_bias": True}),
        ("lora", [], {"tie_word_embeddings": True}),
    ],
    ids=["defaults", "rslora", "dora_bias", "qv_lm_head", "one_layer_bias", "tied"],
)
def test_lmhub_adapter_loads_in_peft(
    tmp_path: Path, variant: str, targets: list[str], hf_overrides: dict[str, Any]
) -> None:
    hf = save_tiny_hf_llama(tmp_path / "base", **hf_overrides)
    rslora, dora = variant == "rslora", variant == "dora"
    config = LoraConfig(rank=4, alpha=12, targets=targets, use_rslora=rslora, use_dora=dora)
    model = lmhub_adapted(tmp_path / "base", config)
    save_adapter(model, tmp_path / "adapter", base_model_name_or_path=str(tmp_path / "base"))

    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["task_type"] == "CAUSAL_LM"
    assert (config["r"], config["lora_alpha"], config["use_rslora"]) == (4, 12, rslora)
    assert config["use_dora"] is dora
    assert config["base_model_name_or_path"] == str(tmp_path / "base")

    peft_model = peft.PeftModel.from_pretrained(hf, tmp_path / "adapter").eval()
    wrapped = {n for n, m in peft_model.named_modules() if hasattr(m, "lora_A") and n}
    assert len(wrapped) == len(lora_layers(model))
    x = ids()
    with torch.no_grad():
        want = peft_model(x).logits
        got = model(x)
        with peft_model.disable_adapter():
            base = peft_model(x).logits
    assert max_diff(got, want) <= ATOL
    # The adapters really change the output (the comparison is not base vs base).
    assert max_diff(want, base) > 1e-2


def test_adapter_file_keys_are_peft_names(tmp_path: Path) -> None:
    save_tiny_hf_llama(tmp_path / "base")
    model = lmhub_adapted(tmp_path / "base", LoraConfig(rank=2, targets=["q_proj"]))
    save_adapter(model, tmp_path / "adapter")
    from safetensors import safe_open

    with safe_open(tmp_path / "adapter" / "adapter_model.safetensors", "pt") as f:
        keys = sorted(f.keys())
    assert keys == [
        f"base_model.model.model.layers.{i}.self_attn.q_proj.lora_{ab}.weight"
        for i in (0, 1)
        for ab in "AB"
    ]
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["target_modules"] == ["q_proj"]


@pytest.mark.parametrize("variant", ["lora", "rslora", "dora"])
def test_peft_adapter_loads_in_lmhub(tmp_path: Path, variant: str) -> None:
    hf = save_tiny_hf_llama(tmp_path / "base", mlp_bias=True)
    peft_config = peft.LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"],
        use_rslora=variant == "rslora",
        use_dora=variant == "dora",
        task_type="CAUSAL_LM",
        init_lora_weights=False,  # random B, so the adapter changes the output
    )
    peft_model = peft.get_peft_model(hf, peft_config).eval()
    perturb_magnitudes(peft_model)
    peft_model.save_pretrained(tmp_path / "adapter")

    model = load_adapter(lmhub.load_model(tmp_path / "base").eval(), tmp_path / "adapter")
    assert len(lora_layers(model)) == 2 * 5
    x = ids()
    with torch.no_grad():
        want = peft_model(x).logits
        got = model(x)
        with peft_model.disable_adapter():
            base = peft_model(x).logits
    assert max_diff(got, want) <= ATOL
    assert max_diff(want, base) > 1e-2


def test_peft_regex_targets_and_excludes(tmp_path: Path) -> None:
    hf = save_tiny_hf_llama(tmp_path / "base")
    peft_config = peft.LoraConfig(
        r=2,
        lora_alpha=4,
        target_modules=r".*\.(q_proj|gate_proj)",
        exclude_modules=["model.layers.0.mlp.gate_proj"],
        init_lora_weights=False,
    )
    peft_model = peft.get_peft_model(hf, peft_config).eval()
    peft_model.save_pretrained(tmp_path / "adapter")
    model = load_adapter(lmhub.load_model(tmp_path / "base").eval(), tmp_path / "adapter")
    assert sorted(lora_layers(model)) == [
        "layers.0.attn.q_proj",
        "layers.1.attn.q_proj",
        "layers.1.ffn.gate_proj",
    ]
    x = ids()
    with torch.no_grad():
        assert max_diff(model(x), peft_model(x).logits) <= ATOL


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
def test_merged_export_matches_peft_merge_and_unload(tmp_path: Path, dora: bool) -> None:
    hf = save_tiny_hf_llama(tmp_path / "base")
    model = lmhub_adapted(tmp_path / "base", LoraConfig(rank=4, alpha=8, use_dora=dora))
    save_adapter(model, tmp_path / "adapter")
    peft_merged = peft.PeftModel.from_pretrained(hf, tmp_path / "adapter").merge_and_unload()

    export(merge_lora(model), tmp_path / "merged")
    reloaded = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "merged").eval()
    x = ids()
    with torch.no_grad():
        want = peft_merged.eval()(x).logits
        got = reloaded(x).logits
    assert max_diff(got, want) <= ATOL
    # The exported weights are the merged weights, tensor for tensor.
    merged_state = peft_merged.state_dict()
    for key, value in reloaded.state_dict().items():
        torch.testing.assert_close(value, merged_state[key], atol=1e-6, rtol=0)


def test_save_then_load_in_lmhub_is_exact(tmp_path: Path) -> None:
    save_tiny_hf_llama(tmp_path / "base")
    model = lmhub_adapted(tmp_path / "base", LoraConfig(rank=3, alpha=5, targets=["k_proj"]))
    save_adapter(model, tmp_path / "adapter")
    again = load_adapter(lmhub.load_model(tmp_path / "base").eval(), tmp_path / "adapter")
    x = ids()
    with torch.no_grad():
        assert torch.equal(again(x), model(x))


_PARTS = ["model", "layers", "0", "1", "self_attn", "mlp", "q_proj", "v_proj", "up_proj", "lm_head"]
_NAMES = st.lists(st.sampled_from(_PARTS), min_size=1, max_size=5).map(".".join)


@settings(max_examples=200, deadline=None)
@given(
    key=_NAMES,
    targets=st.one_of(
        st.lists(_NAMES, min_size=1, max_size=4),
        st.sampled_from([r".*\.q_proj", r"model\.layers\.\d+\.mlp\..*", "q_proj", r".*proj"]),
    ),
    exclude=st.one_of(st.none(), st.lists(_NAMES, max_size=2), st.just(r".*\.1\..*")),
)
def test_target_matching_agrees_with_peft(key: str, targets: Any, exclude: Any) -> None:
    """lmhub reads target_modules/exclude_modules as PEFT does (its own matcher is the oracle)."""
    from peft.tuners.tuners_utils import _ExcludedModule, check_target_module_exists

    config = peft.LoraConfig(target_modules=targets, exclude_modules=exclude)
    want = check_target_module_exists(config, key)
    want_bool = bool(want) and not isinstance(want, _ExcludedModule)
    got = _peft_matches(key, config.target_modules) and not (
        config.exclude_modules and _peft_matches(key, config.exclude_modules)
    )
    assert got == want_bool


def test_all_linear_leaves_out_the_output_projection(tmp_path: Path) -> None:
    hf = save_tiny_hf_llama(tmp_path / "base")
    config = peft.LoraConfig(r=2, target_modules="all-linear", init_lora_weights=False)
    peft_model = peft.get_peft_model(hf, config).eval()
    peft_model.save_pretrained(tmp_path / "adapter")
    adapter_config = tmp_path / "adapter" / "adapter_config.json"
    data = json.loads(adapter_config.read_text())
    data["target_modules"] = "ALL-LINEAR"  # as a user may write it by hand
    adapter_config.write_text(json.dumps(data))
    model = load_adapter(lmhub.load_model(tmp_path / "base").eval(), tmp_path / "adapter")
    assert len(lora_layers(model)) == 2 * 7 and "lm_head" not in lora_layers(model)
    with torch.no_grad():
        assert max_diff(model(ids()), peft_model(ids()).logits) <= ATOL
