"""Remote-code exports: the source bundler, and every family loaded by transformers in a fresh
process where lmhub cannot be imported, running the very classes `to_hf_api` uses (same source,
same logits, loss and greedy tokens)."""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import lmhub
import lmhub.hf
from lmhub.checkpoint.save_load import model_tensors
from lmhub.hf.remote_code import bundle_sources


def _lmhub_imports(text: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "lmhub"]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found += [node.module] if node.module.split(".")[0] == "lmhub" else []
    return found


# -- the bundler ------------------------------------------------------------------------------


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A package ``lmhub.xpkg`` (on lmhub's path for this test) using every import form."""
    root = tmp_path / "extra" / "xpkg"
    root.mkdir(parents=True)
    (root / "__init__.py").write_text(
        "from lmhub.xpkg.core import helper as exported_helper\nCONSTANT = 3\n"
    )
    (root / "core.py").write_text("def helper():\n    return 1\n\n\nVALUE = 2\n")
    (root / "use.py").write_text(
        textwrap.dedent(
            """\
            from __future__ import annotations

            import math

            import lmhub.xpkg.core as core_mod
            from lmhub.errors import (
                ConfigError,
                LmhubError,
            )
            from lmhub.xpkg import CONSTANT, core, exported_helper
            from .core import VALUE as V


            def total():
                from lmhub.xpkg.core import helper

                assert issubclass(ConfigError, LmhubError)
                return (helper() + core.VALUE + core_mod.VALUE + exported_helper() + CONSTANT
                        + V + math.floor(1.5))
            """
        )
    )
    monkeypatch.setattr(lmhub, "__path__", [*lmhub.__path__, str(tmp_path / "extra")])
    yield root
    for name in [m for m in sys.modules if m.startswith("lmhub.xpkg")]:
        del sys.modules[name]


def test_bundle_rewrites_every_import_form(fake_package: Path, tmp_path: Path) -> None:
    files = bundle_sources(["lmhub.xpkg.use"])
    assert set(files) == {
        "lmhub_xpkg_use.py",
        "lmhub_xpkg_core.py",
        "lmhub_xpkg.py",  # for CONSTANT, which only the package defines
        "lmhub_errors.py",
    }
    out = tmp_path / "bundle_pkg"
    out.mkdir()
    (out / "__init__.py").write_text("")
    for name, module in files.items():
        assert _lmhub_imports(module.text) == [], name
        (out / name).write_text(module.text)
    use = files["lmhub_xpkg_use.py"].text
    assert "from .lmhub_xpkg_core import helper as exported_helper" in use  # re-export resolved
    assert "from . import lmhub_xpkg_core as core" in use
    assert files["lmhub_xpkg_use.py"].imported_as_module == {"lmhub.xpkg.core"}
    sys.path.insert(0, str(tmp_path))
    try:
        assert importlib.import_module("bundle_pkg.lmhub_xpkg_use").total() == 12
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("bundle_pkg")]:
            del sys.modules[name]


def test_bundle_rejects_a_bare_lmhub_import(fake_package: Path) -> None:
    (fake_package / "bad.py").write_text("import lmhub.xpkg.core\n")
    with pytest.raises(lmhub.ExportError, match=r"bad\.py.*line 1.*binds the name 'lmhub'"):
        bundle_sources(["lmhub.xpkg.bad"])


def test_llama_bundle_holds_only_what_the_model_needs() -> None:
    files = bundle_sources(["lmhub.models.llama.model"])
    assert "lmhub_models_llama_model.py" in files and "lmhub_nn_rope.py" in files
    # Package __init__ files and unrelated machinery stay out.
    assert not {"lmhub.py", "lmhub_models_llama.py", "lmhub_models_hub.py"} & set(files)
    for name, module in files.items():
        assert _lmhub_imports(module.text) == [], name
        compile(module.text, name, "exec")


def test_the_transformers_classes_bundle_only_small_modules() -> None:
    # What every remote-code export carries besides the model: no family, hub, export or loader.
    files = bundle_sources(["lmhub.hf.adapters.lmhub_model"])
    assert "lmhub_hf_adapters_lmhub_model.py" in files and "lmhub_nn_kv_cache.py" in files
    heavy = ("lmhub_models_llama", "lmhub_models_hub", "lmhub_hf_export", "lmhub_checkpoint_save")
    assert not [name for name in files if name.startswith(heavy)]
    assert "lmhub_hf_adapters_wrap.py" not in files  # to_hf_api stays in process


# -- every family through transformers, in a process without lmhub ----------------------------

# Runs in the parent over to_hf_api's model and in the child over the remote-code model: the
# source of every lmhub class either runs (model, adapter, native model, their bases) and of the
# loss and cache-bridge code they call.
SOURCES = r"""
def lmhub_sources(model, ours):
    import inspect, sys
    found = {}
    for obj in (model, model.decoder, model.decoder.model):
        for cls in type(obj).__mro__:
            if ours(cls.__module__):
                found[cls.__name__] = inspect.getsource(cls)
    module_of = {name: sys.modules[model_cls.__module__] for name, model_cls in (
        (c.__name__, c) for c in (*type(model).__mro__, *type(model.decoder).__mro__))}
    heads, adapters = module_of["CausalLMHeadMixin"], module_of["LmhubDecoderAdapter"]
    for name, fn in (("causal_lm_loss", heads.causal_lm_loss),
                     ("ExternalCacheBridge", adapters.ExternalCacheBridge),
                     ("positions_from_padding", adapters.positions_from_padding)):
        found[name] = inspect.getsource(fn)
    return found
"""

CHILD = (
    SOURCES
    + r"""
import importlib.util, json, os, sys

# Make lmhub unimportable: drop every path entry that provides it (the editable install's .pth).
sys.path[:] = [
    p for p in sys.path if not os.path.isfile(os.path.join(p or ".", "lmhub", "__init__.py"))
]
try:
    import lmhub  # noqa: F401
    lmhub_importable = True
except ImportError:
    lmhub_importable = False

import torch
from transformers import AutoConfig, AutoModelForCausalLM

report = {"lmhub_importable": lmhub_importable, "families": {}}
for family, directory, expected_path in json.loads(sys.argv[1]):
    want = torch.load(expected_path)
    out = {}
    config = AutoConfig.from_pretrained(directory, trust_remote_code=True)
    out["config_class"] = type(config).__name__
    model = AutoModelForCausalLM.from_pretrained(directory, trust_remote_code=True).eval()
    out["model_module"] = type(model).__module__
    with torch.no_grad():
        out["max_diff"] = (model(want["ids"]).logits - want["logits"]).abs().max().item()
        out["logits_vs_to_hf_api"] = (
            (model(want["ids"]).logits - want["hf_logits"]).abs().max().item())
        out["loss_vs_to_hf_api"] = abs(
            model(want["ids"], labels=want["labels"]).loss.item() - want["hf_loss"])
    out["sources"] = lmhub_sources(
        model, lambda m: m.startswith("transformers_modules.") and ".modeling_lmhub_" not in m)
    prefix = "decoder.model."
    out["tied"] = all(model.get_parameter(prefix + a) is model.get_parameter(prefix + s)
                      for a, s in want["tied"].items())
    prompt = want["ids"][:1, :4]
    out["greedy"] = model.generate(prompt, max_new_tokens=6, do_sample=False).tolist()
    out["greedy_no_cache"] = model.generate(
        prompt, max_new_tokens=6, do_sample=False, use_cache=False).tolist()
    beams = dict(max_new_tokens=4, num_beams=3, do_sample=False)
    out["beams_equal"] = (model.generate(prompt, **beams).tolist()
                          == model.generate(prompt, use_cache=False, **beams).tolist())
    # A left-padded batch generates what each prompt generates alone.
    short = want["ids"][1:, :2]
    pad = config.pad_token_id if config.pad_token_id is not None else 0
    batch = torch.cat([prompt, torch.cat([torch.full((1, 2), pad), short], dim=1)])
    mask = torch.ones_like(batch)
    mask[1, :2] = 0
    # min_new_tokens: a row alone that ends early (EOS) would compare its prompt.
    padded = model.generate(batch, attention_mask=mask, max_new_tokens=5, do_sample=False,
                            pad_token_id=pad, min_new_tokens=5)
    alone = [model.generate(p, max_new_tokens=5, do_sample=False, pad_token_id=pad,
                            min_new_tokens=5)[0, -5:]
             for p in (prompt, short)]
    out["left_padding_equal"] = padded[:, -5:].tolist() == [a.tolist() for a in alone]
    fresh = AutoModelForCausalLM.from_config(config, trust_remote_code=True).eval()
    with torch.no_grad():
        logits = fresh(want["ids"]).logits
    out["from_config_shape"] = list(logits.shape)
    out["from_config_finite"] = bool(torch.isfinite(logits).all())
    report["families"][family] = out
report["lmhub_modules"] = sorted(m for m in sys.modules if m.split(".")[0] == "lmhub")
print("REPORT " + json.dumps(report))
"""
)


def _lmhub_sources(model: Any) -> dict[str, str]:
    scope: dict[str, Any] = {}
    exec(SOURCES, scope)
    return scope["lmhub_sources"](model, lambda m: m.startswith("lmhub."))


def _greedy(model: Any, prompt: torch.Tensor, steps: int) -> list[list[int]]:
    seq = prompt
    with torch.no_grad():
        for _ in range(steps):
            seq = torch.cat([seq, model(seq)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return seq.tolist()


def test_every_family_loads_without_lmhub(tmp_path: Path) -> None:
    cases, greedy, shapes, sources = [], {}, {}, {}
    for family in lmhub.list_families():
        fam = lmhub.get_family(family)
        if fam.kind != "decoder":
            continue
        arch = next((a for a in fam.archs.names() if a.endswith("_tiny")), fam.archs.names()[0])
        config = lmhub.apply_overrides(fam.archs.get(arch), {"num_layers": 2})
        torch.manual_seed(0)
        model = lmhub.get_model_hub(fam).create_new_model(config).eval()
        directory = tmp_path / family
        result = lmhub.hf.export(model, directory, remote_code=True)
        assert result.kind == "remote_code" and result.weights
        for name in result.files:
            if name.endswith(".py"):
                assert _lmhub_imports((directory / name).read_text()) == [], name
        ids = torch.randint(0, config.vocab_size, (2, 7))
        with torch.no_grad():
            logits = model(ids)
        hf = lmhub.hf.to_hf_api(model)
        labels = ids.clone()
        labels[0, :3] = -100
        with torch.no_grad():
            hf_logits = hf(ids).logits
            hf_loss = hf(ids, labels=labels).loss.item()
        torch.save(
            {
                "ids": ids,
                "logits": logits,
                "tied": model_tensors(model)[1],
                "hf_logits": hf_logits,
                "labels": labels,
                "hf_loss": hf_loss,
            },
            tmp_path / f"{family}.pt",
        )
        sources[family] = _lmhub_sources(hf)
        greedy[family] = _greedy(model, ids[:1, :4], 6)
        assert (
            hf.generate(ids[:1, :4], max_new_tokens=6, do_sample=False).tolist() == greedy[family]
        )
        shapes[family] = [2, 7, config.vocab_size]
        cases.append((family, str(directory), str(tmp_path / f"{family}.pt")))

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    run = subprocess.run(
        [sys.executable, "-I", str(script), json.dumps(cases)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    report = json.loads(run.stdout.split("REPORT ", 1)[1])
    assert report["lmhub_importable"] is False
    assert report["lmhub_modules"] == []
    assert set(report["families"]) == set(greedy)
    for family, out in report["families"].items():
        assert out["config_class"].startswith("Lmhub"), family
        assert out["model_module"].startswith("transformers_modules."), family
        assert out["max_diff"] <= 1e-5, family
        assert out["logits_vs_to_hf_api"] <= 1e-5 and out["loss_vs_to_hf_api"] <= 1e-5, family
        # One implementation: the exported code is the code to_hf_api runs.
        assert {"LmhubForCausalLM", "CausalLMHeadMixin", "LmhubDecoderAdapter"} <= set(
            out["sources"]
        ), family
        assert out["sources"] == sources[family], family
        assert out["tied"], family
        assert out["greedy"] == greedy[family], family
        assert out["greedy_no_cache"] == greedy[family], family
        assert out["beams_equal"], family
        assert out["left_padding_equal"], family
        assert out["from_config_shape"] == shapes[family] and out["from_config_finite"], family
