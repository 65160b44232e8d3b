"""The example plugin (examples/plugin_family): found through its entry points, and held to the
family contract.

"Installing" it here is what pip leaves behind, minus the copying: a ``.dist-info`` folder whose
``entry_points.txt`` is written from the plugin's own ``pyproject.toml``, next to its source
folder, both on the path. That is offline and takes milliseconds. The contract
(tests/models/test_family_contract.py, parametrised over every family the registry knows when
it is collected) then runs on the plugin in a fresh interpreter that sees the entry point, so the
plugin passes the very tests the built-in families pass. A slow test does the real
``pip install`` as well.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lmhub

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "plugin_family"
PLUGIN_SRC = PLUGIN / "src"
FAMILY = "parallel_lm"
GROUPS = ("lmhub.families", "lmhub.cards")


def plugin_project() -> dict[str, object]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    with open(PLUGIN / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def write_dist_info(site: Path) -> Path:
    """Write the plugin's ``.dist-info`` (metadata and entry points, from its pyproject.toml)
    into ``site``; return ``site``."""
    project = plugin_project()
    name, version = str(project["name"]), str(project["version"])
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    sections = [
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in points.items())
        for group, points in project["entry-points"].items()  # type: ignore[attr-defined]
    ]
    (info / "entry_points.txt").write_text("\n".join(sections), encoding="utf-8")
    return site


def plugin_env(*paths: Path) -> dict[str, str]:
    """The environment of a child interpreter that sees ``paths`` and lmhub's source."""
    env = dict(os.environ)
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), str(ROOT), *([old] if old else [])])
    return env


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the plugin visible to this process, and lmhub's registry forget what it loaded
    (both restored afterwards)."""
    from lmhub.models import registry

    monkeypatch.syspath_prepend(str(PLUGIN_SRC))
    monkeypatch.syspath_prepend(str(write_dist_info(tmp_path / "site")))
    importlib.invalidate_caches()
    monkeypatch.setattr(registry, "_families", {})
    monkeypatch.setattr(registry, "_loaded", False)


def test_the_pyproject_declares_both_entry_points() -> None:
    points = plugin_project()["entry-points"]
    assert set(points) == set(GROUPS)  # type: ignore[arg-type]
    assert points["lmhub.families"] == {FAMILY: "lmhub_parallel_lm:parallel_lm_family"}  # type: ignore[index]


def test_lmhub_does_not_know_the_family_without_the_plugin() -> None:
    from importlib.metadata import entry_points

    if any(ep.name == FAMILY for ep in entry_points(group="lmhub.families")):
        pytest.skip("The example plugin is installed in this environment.")
    assert FAMILY not in lmhub.list_families()


@pytest.mark.usefixtures("installed")
def test_the_family_and_its_cards_come_from_the_entry_points() -> None:
    family = lmhub.get_family(FAMILY)
    assert type(family).__module__ == "lmhub.models.family"
    assert family.model_class.__module__ == "lmhub_parallel_lm.model"
    assert "llama" in lmhub.list_families()  # the built-ins are still there
    hub = lmhub.get_model_hub(FAMILY)
    assert {card.name for card in hub.iter_cards()} == set(hub.get_archs())
    model = hub.create_new_model(hub.get_model_config("parallel_lm_tiny"), meta=True)
    assert isinstance(model, family.model_class)


@pytest.mark.usefixtures("installed")
def test_checkpoints_in_the_fused_layout_load_and_round_trip(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    hub = lmhub.get_model_hub(FAMILY)
    config = lmhub.apply_overrides(hub.get_arch_config("parallel_lm_tiny"), {"num_layers": 2})
    model = hub.create_new_model(config).eval()
    native = model.state_dict()
    weight_map = lmhub.get_family(FAMILY).weight_map.bind(config)
    external = dict(weight_map.convert_to_external(native.items(), tied=True))
    assert "blocks.1.attn.wqkv.weight" in external and "blocks.0.mlp.w12.weight" in external
    assert "head.weight" not in external  # tied: the embedding is stored once
    back = {k: t for k, t, _ in weight_map.convert_to_native(external.items())}
    assert back.keys() == native.keys() - {"lm_head.weight"}
    assert all(torch.equal(back[k], native[k]) for k in back)
    save_file(external, str(tmp_path / "model.safetensors"))
    loaded = lmhub.load_checkpoint(tmp_path, hub.create_new_model(config, meta=True)).eval()
    ids = torch.randint(0, config.vocab_size, (2, 9))
    with torch.no_grad():
        assert torch.equal(loaded(ids), model(ids))


def test_the_plugin_passes_the_family_contract(tmp_path: Path) -> None:
    site = write_dist_info(tmp_path / "site")
    contract = ROOT / "tests" / "models" / "test_family_contract.py"
    command = [sys.executable, "-m", "pytest", str(contract), "-q", "-p", "no:cacheprovider"]
    command += ["-p", "no:xdist", "-p", "no:randomly", "-k", FAMILY]
    run = subprocess.run(
        command, cwd=ROOT, env=plugin_env(site, PLUGIN_SRC), capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    passed = re.search(r"(\d+) passed", run.stdout)
    # Every contract test with a family parameter: config, presets, cards, forward, weights.
    assert passed and int(passed.group(1)) >= 25, run.stdout[-2000:]


@pytest.mark.slow
def test_pip_installs_the_plugin(tmp_path: Path) -> None:
    pytest.importorskip("setuptools")
    # Built from a copy: an in-tree build leaves build/ and an .egg-info in the repository.
    source = shutil.copytree(PLUGIN, tmp_path / "plugin_family")
    target = tmp_path / "target"
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    install += ["--no-build-isolation", "--no-index", "--target", str(target), str(source)]
    run = subprocess.run(install, capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-4000:]
    code = (
        "import lmhub; f = lmhub.get_family('parallel_lm'); "
        "hub = lmhub.get_model_hub(f); print(sorted(c.name for c in hub.iter_cards()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=plugin_env(target), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-4000:]
    assert out.stdout.strip() == "['parallel_lm_42m', 'parallel_lm_tiny']"
