"""The typed hub, the family registry and loading errors."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import lmhub
from lmhub.errors import (
    HfConfigError,
    ModelArchitectureNotKnownError,
    ModelCheckpointError,
    ModelFamilyNotKnownError,
    ModelNotKnownError,
    StateDictMismatchError,
)
from lmhub.models.llama import LlamaConfig, LlamaModel, get_llama_model_hub, llama_family

# Published parameter counts (the model cards of Meta's releases / HF safetensors totals).
PUBLISHED_PARAMS = {
    "llama2_7b": 6_738_415_616,
    "llama2_13b": 13_015_864_320,
    "llama2_70b": 68_976_648_192,
    "llama3_8b": 8_030_261_248,
    "llama3_70b": 70_553_706_496,
    "llama3_1_8b": 8_030_261_248,
    "llama3_1_70b": 70_553_706_496,
    "llama3_2_1b": 1_235_814_400,
    "llama3_2_3b": 3_212_749_824,
}


@pytest.mark.parametrize("arch", list(PUBLISHED_PARAMS))
def test_preset_parameter_counts(arch: str) -> None:
    hub = lmhub.get_model_hub("llama")
    model = hub.create_new_model(hub.get_arch_config(arch), meta=True)
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED_PARAMS[arch]
    assert all(p.is_meta for p in model.parameters())


def test_tiny_is_a_few_million() -> None:
    hub = get_llama_model_hub()
    n = sum(p.numel() for p in hub.create_new_model(hub.get_arch_config("llama_tiny")).parameters())
    assert 1_000_000 < n < 10_000_000


class _OpRecorder(TorchDispatchMode):
    """Counts the aten ops run under it and the bytes of every tensor they create off meta."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()
        self.real_bytes = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        self.ops[str(func)] += 1
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and not t.is_meta:
                self.real_bytes += t.numel() * t.element_size()
        return out


def _record_meta_build(arch: str, **overrides: Any) -> tuple[_OpRecorder, torch.nn.Module]:
    hub = get_llama_model_hub()
    config = lmhub.apply_overrides(hub.get_arch_config(arch), overrides)
    with _OpRecorder() as recorder:
        model = hub.create_new_model(config, meta=True)
    return recorder, model


def test_meta_70b_allocates_nothing_and_runs_no_init() -> None:
    # Building on meta is bookkeeping: one `empty` per tensor and no init kernels, so its cost
    # cannot grow with the model beyond that (checked by op counts, not by a clock).
    deep, model = _record_meta_build("llama3_70b")
    shallow, _ = _record_meta_build("llama3_70b", num_layers=1)
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED_PARAMS["llama3_70b"]
    assert all(p.is_meta for p in model.parameters())
    # Only the RoPE frequency table (head_dim / 2 floats) is computed for real, once.
    assert deep.real_bytes < 4096
    empty = "aten.empty.memory_format"
    assert deep.ops[empty] == len(list(model.parameters()))
    assert deep.ops - Counter({empty: deep.ops[empty]}) == shallow.ops - Counter(
        {empty: shallow.ops[empty]}
    )


def test_typed_hub_and_family() -> None:
    hub = get_llama_model_hub()
    assert hub is lmhub.get_model_hub(llama_family) is lmhub.get_model_hub("llama")
    assert hub.family.model_class is LlamaModel and hub.family.config_class is LlamaConfig
    assert "llama" in lmhub.list_families()
    assert "llama3_8b" in hub.get_archs()
    assert hub.maybe_get_arch_config("nope") is None
    assert {c.name for c in hub.iter_cards()} >= set(PUBLISHED_PARAMS)


def test_unknown_names_suggest_close_matches() -> None:
    with pytest.raises(ModelArchitectureNotKnownError) as info:
        get_llama_model_hub().get_arch_config("llama3_8")
    assert info.value.arch == "llama3_8" and info.value.family == "llama"
    assert "llama3_8b" in str(info.value) and "llama" in str(info.value)
    with pytest.raises(ModelFamilyNotKnownError, match="llama"):
        lmhub.get_model_hub("lama")
    with pytest.raises(ModelNotKnownError):
        lmhub.load_model("no_such_model_anywhere")
    assert issubclass(ModelNotKnownError, lmhub.LmhubError)


def test_create_new_model_device_dtype_and_gangs() -> None:
    hub = get_llama_model_hub()
    cfg = hub.get_arch_config("llama_tiny")
    model = hub.create_new_model(cfg, device="cpu", dtype="bfloat16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.rope.inv_freq.dtype == torch.float32
    model = hub.create_new_model(cfg, gangs=lmhub.fake_gangs("cpu"))
    assert next(model.parameters()).device.type == "cpu"
    with pytest.raises(ValueError, match="either `device` or `gangs`"):
        hub.create_new_model(cfg, device="cpu", gangs=lmhub.fake_gangs())
    assert torch.get_default_dtype() == torch.float32


def test_create_new_model_initialises_once_and_ties() -> None:
    hub = get_llama_model_hub()
    cfg = hub.get_arch_config("llama_tiny")
    cfg.tie_embeddings = True
    model = hub.create_new_model(cfg)
    assert model.lm_head.weight is model.embed.weight
    std = model.layers[0].attn.q_proj.weight.std().item()
    assert abs(std - cfg.init_std) < 0.002
    assert torch.isfinite(model(torch.tensor([[1, 2, 3]]))).all()


def _save_native(tmp_path: Path, cfg: LlamaConfig) -> LlamaModel:
    from safetensors.torch import save_file

    model = get_llama_model_hub().create_new_model(cfg)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "model.safetensors"
    )
    return model


def test_load_custom_model_native_keys(tmp_path: Path) -> None:
    hub = get_llama_model_hub()
    cfg = hub.get_arch_config("llama_tiny")
    ref = _save_native(tmp_path, cfg)
    model = hub.load_custom_model(tmp_path, cfg, mmap=True)
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        assert torch.equal(model(ids), ref(ids))
    pairs = list(hub.iter_checkpoint(tmp_path, cfg))
    assert {k for k, _ in pairs} == set(ref.state_dict())


def test_mismatch_error_lists_everything(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    hub = get_llama_model_hub()
    cfg = hub.get_arch_config("llama_tiny")
    model = hub.create_new_model(cfg)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    del sd["final_norm.weight"], sd["layers.1.ffn.up_proj.weight"]
    sd["embed.weight"] = torch.zeros(10, 256)
    sd["bogus.weight"] = torch.zeros(1)
    save_file(sd, tmp_path / "model.safetensors")
    with pytest.raises(StateDictMismatchError) as info:
        hub.load_custom_model(tmp_path, cfg)
    err = info.value
    assert set(err.missing) == {"final_norm.weight", "layers.1.ffn.up_proj.weight"}
    assert err.unexpected == ["bogus.weight"]
    assert err.shape_mismatches == [("embed.weight", (259, 256), (10, 256))]
    text = str(err)
    assert "final_norm.weight" in text and "bogus.weight" in text and "(10, 256)" in text


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ModelCheckpointError, match=r"config\.json"):
        lmhub.load_model(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelCheckpointError, match=re.escape(str(tmp_path / "config.json"))):
        lmhub.load_model(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "gpt_neo"}')
    with pytest.raises(HfConfigError, match=r"'gpt_neo', which no lmhub family reads.*llama"):
        lmhub.load_model(tmp_path)
    (tmp_path / "config.json").write_text('{"hidden_size": 8}')
    with pytest.raises(HfConfigError, match="'model_type' is missing"):
        lmhub.load_model(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "llama", "hidden_size": 8}')
    with pytest.raises(HfConfigError, match=r"num_hidden_layers.*num_attention_heads"):
        lmhub.load_model(tmp_path)


def test_failed_load_leaves_nothing_behind(tmp_path: Path) -> None:
    import gc
    import weakref

    from safetensors.torch import save_file

    hub = get_llama_model_hub()
    cfg = hub.get_arch_config("llama_tiny")
    save_file({"embed.weight": torch.zeros(259, 256)}, tmp_path / "model.safetensors")
    built: list[weakref.ref[torch.nn.Module]] = []
    original = llama_family.builder

    def tracking_builder(config: LlamaConfig) -> LlamaModel:
        model = original(config)
        built.append(weakref.ref(model))
        return model

    object.__setattr__(llama_family, "builder", tracking_builder)
    try:
        with pytest.raises(StateDictMismatchError):
            hub.load_custom_model(tmp_path, cfg)
    finally:
        object.__setattr__(llama_family, "builder", original)
    gc.collect()
    assert built and built[0]() is None


def test_entry_point_families_are_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    from lmhub.models import registry

    class FakeEntryPoint:
        name = "toy"

        def load(self) -> object:
            from lmhub.models.archs import ArchRegistry
            from lmhub.models.family import ModelFamily

            return ModelFamily(
                name="toy_family",
                model_class=LlamaModel,
                config_class=LlamaConfig,
                archs=ArchRegistry("toy_family", LlamaConfig),
                builder=LlamaModel,
            )

    monkeypatch.setattr(registry, "_families", {})
    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.setattr(registry, "entry_points", lambda group: [FakeEntryPoint()])
    assert "toy_family" in registry.list_families() and "llama" in registry.list_families()


@pytest.mark.parametrize("family", ["deepone", "llama"])
def test_load_model_reads_remote_code_exports(tmp_path: Path, family: str) -> None:
    from lmhub.hf import export

    hub = lmhub.get_model_hub(family)
    cfg = lmhub.apply_overrides(hub.get_arch_config(f"{family}_tiny"), ["num_layers=2"])
    model = hub.create_new_model(cfg).eval()
    export(model, tmp_path / "out", remote_code=True)
    loaded = lmhub.load_model(tmp_path / "out").eval()
    assert type(loaded) is type(model) and loaded.config == model.config
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert torch.equal(loaded(ids), model(ids))


def test_progress_bar_on_a_terminal_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from lmhub.checkpoint import assign

    events: list[str] = []

    class RecordingBar:
        def __init__(self, total: int) -> None:
            events.append(f"start {total}")

        def advance(self) -> None:
            events.append("advance")

        def stop(self) -> None:
            events.append("stop")

    hub = get_llama_model_hub()
    cfg = lmhub.apply_overrides(hub.get_arch_config("llama_tiny"), ["num_layers=8"])
    _save_native(tmp_path, cfg)
    monkeypatch.setattr(assign, "_Bar", RecordingBar)
    hub.load_custom_model(tmp_path, cfg, progress=True)
    assert events == []  # not a terminal
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    hub.load_custom_model(tmp_path, cfg, progress=False)
    assert events == []
    hub.load_custom_model(tmp_path, cfg, progress=True)
    n = len(hub.create_new_model(cfg, meta=True).state_dict())
    assert events == [f"start {n}", *["advance"] * n, "stop"]
