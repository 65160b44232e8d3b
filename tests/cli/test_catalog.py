"""The catalogue commands: families, archs, cards, show, demo; user errors exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lmhub.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_families_and_archs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "families")
    assert code == 0 and "llama" in out
    code, out, _ = run(capsys, "archs", "llama")
    assert code == 0 and "llama3_2_1b" in out and "1.24B" in out and "70.55B" in out


def table_column(out: str) -> list[str]:
    """The first column of a rich table's body rows (wrapped rows leave it empty)."""
    cells = [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│")]
    return [c for c in cells if c]


def test_families_and_archs_list_everything(capsys: pytest.CaptureFixture[str]) -> None:
    import lmhub
    from lmhub.models.registry import all_arch_names

    code, out, _ = run(capsys, "families")
    assert code == 0 and table_column(out) == lmhub.list_families()
    code, out, _ = run(capsys, "archs")
    assert code == 0 and sorted(table_column(out)) == sorted(all_arch_names())


def test_show_prints_the_resolved_config_of_a_card(capsys: pytest.CaptureFixture[str]) -> None:
    import lmhub

    code, out, _ = run(capsys, "show", "gemma2_9b")
    assert code == 0
    data = yaml.safe_load(out)
    assert (data["card"], data["family"], data["arch"]) == ("gemma2_9b", "gemma2", "gemma2_9b")
    preset = lmhub.get_model_hub("gemma2").get_arch_config("gemma2_9b")
    assert data["config"] == lmhub.to_dict(preset)
    assert data["config"]["attn_logit_softcap"] == 50.0 and len(data["config"]["layer_types"]) == 42


def test_cards_lists_shipped_cards(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "cards")
    assert code == 0 and "llama3_8b" in out and "hf://meta-llama" in out


def test_show_prints_yaml_with_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", "llama3_1_8b", "--set", "rope_scaling.factor=16")
    assert code == 0
    data = yaml.safe_load(out)
    assert data["card"] == "llama3_1_8b"
    assert data["config"]["rope_scaling"]["factor"] == 16.0
    code, out, _ = run(capsys, "show", "llama_tiny")
    assert yaml.safe_load(out)["config"]["model_dim"] == 256


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("show", "llama3_8x"), "Did you mean 'llama3_8b'"),
        (("show", "llama_tiny", "--set", "model_dim=abc"), "'model_dim'"),
        (("show", "llama_tiny", "--set", "num_kv_heads=3"), "num_kv_heads"),
        (("archs", "lama"), "Did you mean 'llama'"),
    ],
)
def test_user_errors_are_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], needle: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert needle in err and "Traceback" not in err
    assert err.strip().startswith("error:")


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "bogus")
    assert code == 2 and "No such command" in err


def test_demo_trains_offline(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = ("--steps", "2", "--batch-size", "2", "--sample-tokens", "8", "--output-dir")
    code, out, _ = run(capsys, "demo", *args, str(tmp_path / "demo"))
    assert code == 0
    assert "Before training" in out and "After training" in out and "ROMEO:" in out
    assert "max |logit diff| 0.0e+00" in out
    assert (tmp_path / "demo" / "final" / "config.json").is_file()
    assert (tmp_path / "demo" / "metrics.jsonl").is_file()
