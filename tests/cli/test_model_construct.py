"""``lmhub model construct``: MODEL forms, devices and weights, customisation flags, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

import lmhub
from lmhub.cli.main import main
from lmhub.hf.export import read_exported_config
from lmhub.models.materialize import load_checkpoint
from tests.oracle.hf_models import save_tiny_hf_llama


def run(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, " ".join(out.split()), " ".join(err.split())


def _config(path: Path) -> dict[str, Any]:
    return json.loads((path / "config.json").read_text())


def _load(path: Path) -> Any:
    """Load an export back with lmhub (config from config.json, weights from the files)."""
    family, config, dtype = read_exported_config(path)
    model = lmhub.get_model_hub(family).create_new_model(config, dtype=dtype, meta=True)
    return load_checkpoint(path, model).eval()


def test_arch_on_meta_writes_config_only_and_keeps_identical_output(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "llama"
    code, text, _ = run(capsys, "model", "construct", "llama_tiny", "-o", out)
    assert code == 0 and "native Hugging Face" in text and "no weights" in text
    assert sorted(os.listdir(out)) == ["config.json", "generation_config.json"]
    stamp = (out / "config.json").stat().st_mtime_ns
    code, text, _ = run(capsys, "model", "construct", "llama_tiny", "-o", out)
    assert code == 0 and "left it as it was" in text
    assert (out / "config.json").stat().st_mtime_ns == stamp
    code, _, err = run(capsys, "model", "construct", "llama_tiny", "-o", out, "--d-head", "64")
    assert code == 2 and "different contents" in err and "--refresh" in err
    code, _, _ = run(
        capsys, "model", "construct", "llama_tiny", "-o", out, "--d-head", "64", "--refresh"
    )
    assert code == 0 and _config(out)["head_dim"] == 64


def test_flags_map_onto_config_fields(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "rc"
    code, text, err = run(
        capsys, "model", "construct", "llama_tiny", "-o", out, "--remote-code",
        "--hidden-size", 128, "--num-attention-heads", 4, "--num-kv-heads", 2, "--d-head", 16,
        "--num-hidden-layers", 3, "--dim-feedforward", 96, "--rope-theta", 500000,
        "--rms-norm-eps", 1e-6, "--rope-scaling", "{rope_type: linear, factor: 4}",
        "--attn-implementation", "eager", "--tie-word-embeddings", "--attention-dropout", 0.1,
        "--set", "vocab_size=300", "--set", "max_seq_len=64",
    )  # fmt: skip
    assert code == 0, err
    assert "remote-code" in text
    config = _config(out)
    assert {k: config[k] for k in (
        "model_dim", "num_heads", "num_kv_heads", "head_dim", "num_layers", "ffn_inner_dim",
        "lmhub_rope_theta", "norm_eps", "attn_impl", "tie_embeddings", "dropout_p", "vocab_size",
        "max_seq_len",
    )} == {
        "model_dim": 128, "num_heads": 4, "num_kv_heads": 2, "head_dim": 16, "num_layers": 3,
        "ffn_inner_dim": 96, "lmhub_rope_theta": 500000.0, "norm_eps": 1e-6,
        "attn_impl": "eager", "tie_embeddings": True, "dropout_p": 0.1, "vocab_size": 300,
        "max_seq_len": 64,
    }  # fmt: skip
    assert config["lmhub_rope_scaling"]["kind"] == "linear"
    assert config["lmhub_rope_scaling"]["factor"] == 4.0
    code, _, _ = run(
        capsys,
        "model",
        "construct",
        "llama_tiny",
        "-o",
        tmp_path / "n",
        "--rope-scaling",
        "null",
        "--no-tie-word-embeddings",
    )
    assert code == 0
    assert _config(tmp_path / "n")["rope_scaling"] is None
    assert _config(tmp_path / "n")["tie_word_embeddings"] is False


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (
            ["gpt2_tiny", "--sliding-window", "4"],
            ["'gpt2' family has no sliding", "mistral"],
        ),
        (["mistral_tiny", "--sliding-window", "0"], ["sliding_window"]),
        (["deepone_tiny", "--rope-theta", "5"], ["--rope-theta", "'deepone'", "rope_theta"]),
        (["single_head_tiny", "--num-kv-heads", "2"], ["--num-kv-heads", "'single_head'"]),
        (["llama_tiny", "--attn-implementation", "flash_attention_2"], ["not available", "flex"]),
        (["llama_tiny", "--attn-implementation", "xformers"], ["xformers", "flash_attention_2"]),
        (["llama_tiny", "--save-checkpoint"], ["--save-checkpoint", "--device cpu"]),
        (["llama_tiny", "--set", "no_such_field=1"], ["no_such_field", "LlamaConfig"]),
        (["llama_tiny", "--num-kv-heads", "3"], ["num_kv_heads"]),
        (["no_such_model"], ["no_such_model", "not a known model"]),
    ],
)
def test_unsupported_flags_and_bad_values_are_clear_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], needles: list[str]
) -> None:
    code, _, err = run(capsys, "model", "construct", *argv, "-o", tmp_path / "out")
    assert code == 2
    for needle in needles:
        assert needle in err
    assert not (tmp_path / "out").exists()


def test_cpu_weights_are_the_seeded_init_and_no_init_skips_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, text, _ = run(
        capsys,
        "model",
        "construct",
        "deepone_tiny",
        "-o",
        tmp_path / "a",
        "--device",
        "cpu",
        "--save-checkpoint",
        "--num-hidden-layers",
        2,
        "--seed",
        3,
    )
    assert code == 0 and "with weights" in text
    hub = lmhub.get_model_hub("deepone")
    config = lmhub.apply_overrides(hub.get_arch_config("deepone_tiny"), {"num_layers": 2})
    torch.manual_seed(3)
    reference = hub.create_new_model(config)
    loaded = _load(tmp_path / "a")
    assert all(
        torch.equal(a, b)
        for a, b in zip(loaded.state_dict().values(), reference.state_dict().values())
    )
    code, _, _ = run(
        capsys,
        "model",
        "construct",
        "deepone_tiny",
        "-o",
        tmp_path / "b",
        "--device",
        "cpu",
        "--save-checkpoint",
        "--num-hidden-layers",
        2,
        "--seed",
        3,
        "--no-init-weights",
        "--no-safetensors",
    )
    assert code == 0
    assert "pytorch_model.bin" in os.listdir(tmp_path / "b")
    uninitialised = _load(tmp_path / "b")
    assert not torch.equal(uninitialised.embed.weight, reference.embed.weight)
    assert torch.nn.init.normal_.__module__ == "torch.nn.init"  # restored afterwards


def test_checkpoint_dir_as_model_converts_hf_llama_to_remote_code(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    hf = save_tiny_hf_llama(tmp_path / "hf", tie_word_embeddings=True)
    code, text, err = run(
        capsys,
        "model",
        "construct",
        tmp_path / "hf",
        "-o",
        tmp_path / "rc",
        "--remote-code",
        "--device",
        "cpu",
        "--save-checkpoint",
    )
    assert code == 0, err
    assert "remote-code" in text
    model = _load(tmp_path / "rc")
    assert model.lm_head.weight is model.embed.weight
    ids = torch.randint(0, 160, (2, 9))
    with torch.no_grad():
        assert (model(ids) - hf(ids).logits).abs().max().item() <= 1e-5
    # The same weights into an arch-built model, in bfloat16, through --load-from-checkpoint.
    code, _, err = run(
        capsys,
        "model",
        "construct",
        "llama_tiny",
        "-o",
        tmp_path / "bf16",
        "--device",
        "cpu",
        "--save-checkpoint",
        "--load-from-checkpoint",
        tmp_path / "hf",
        "--dtype",
        "bfloat16",
        "--hidden-size",
        64,
        "--dim-feedforward",
        96,
        "--num-hidden-layers",
        2,
        "--num-attention-heads",
        4,
        "--num-kv-heads",
        2,
        "--set",
        "vocab_size=160",
        "--set",
        "max_seq_len=64",
        "--tie-word-embeddings",
    )
    assert code == 0, err
    assert _config(tmp_path / "bf16")["dtype"] == "bfloat16"
    bf16 = _load(tmp_path / "bf16")
    assert bf16.embed.weight.dtype == torch.bfloat16
    assert torch.equal(bf16.embed.weight, hf.model.embed_tokens.weight.to(torch.bfloat16))


def test_card_with_a_tokenizer(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from lmhub.data.tokenizers import ByteTokenizer
    from lmhub.hf.tokenizer_files import byte_level_tokenizer_json

    tok_dir = tmp_path / "tok"
    tok_dir.mkdir()
    (tok_dir / "tokenizer.json").write_text(byte_level_tokenizer_json(ByteTokenizer()))
    (tok_dir / "tokenizer_config.json").write_text(
        json.dumps({"bos_token": "<|bos|>", "eos_token": "<|eos|>"})
    )
    (tok_dir / "chat_template.jinja").write_text("{{ messages[0].content }}")
    cards = Path(os.environ["LMHUB_CARDS_DIR"])
    cards.mkdir(parents=True, exist_ok=True)
    (cards / "mine.yaml").write_text(
        f"name: my_single_head\nmodel_family: single_head\nmodel_arch: single_head_tiny\n"
        f"model_config: {{num_layers: 1}}\ntokenizer: {tok_dir}\n"
    )
    code, _, err = run(capsys, "model", "construct", "my_single_head", "-o", tmp_path / "out")
    assert code == 0, err
    files = set(os.listdir(tmp_path / "out"))
    assert {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"} <= files
    config = _config(tmp_path / "out")
    assert config["num_layers"] == 1
    assert (config["bos_token_id"], config["eos_token_id"]) == (256, 257)


@pytest.mark.parametrize("command", ["construct", "generate", "test"])
def test_a_bad_config_json_is_one_line_naming_file_and_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    save_tiny_hf_llama(tmp_path / "ckpt")
    config = _config(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps({**config, "num_hidden_layers": "2"}))
    argv = {
        "construct": ["model", "construct", tmp_path / "ckpt", "-o", tmp_path / "out"],
        "generate": ["generate", tmp_path / "ckpt", "--prompt", "hi"],
        "test": ["model", "test", tmp_path / "ckpt"],
    }[command]
    capsys.readouterr()  # transformers' save progress
    code = main([str(a) for a in argv])
    _, err = capsys.readouterr()
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert str(tmp_path / "ckpt" / "config.json") in err and "'num_hidden_layers'" in err


WINDOWED = ["gemma", "gemma2", "gemma3", "gpt_oss", "granite", "llama", "mistral"]
WINDOWED += ["mixtral", "olmo2", "olmo3", "phi3", "qwen2", "qwen3", "qwen3_moe"]
WINDOWED += ["smollm3", "gemma4"]
NATIVE_WINDOWS = {"gemma2", "gemma3", "gpt_oss", "mistral", "mixtral", "olmo3", "phi3", "qwen2"}
NATIVE_WINDOWS |= {"qwen3", "qwen3_moe", "smollm3", "gemma4"}
"""The families transformers gives a sliding window; the others export one as remote code."""


def test_a_window_transformers_cannot_express_exports_as_remote_code(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Llama in transformers has no window: the export falls back to lmhub's own code, says so.
    code, text, err = run(
        capsys, "model", "construct", "llama_tiny", "-o", tmp_path, "--sliding-window", 4
    )
    assert code == 0, err
    assert "remote-code" in text
    exported, config, _ = read_exported_config(tmp_path)
    assert exported.name == "llama"
    assert config.sliding_window == 4


@pytest.mark.parametrize("family", WINDOWED)
def test_sliding_window_flag_sets_the_family_window(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, family: str
) -> None:
    out = tmp_path / family
    extra = [] if family in NATIVE_WINDOWS else ["--remote-code"]
    code, text, err = run(
        capsys, "model", "construct", f"{family}_tiny", "-o", out, "--sliding-window", 3, *extra
    )
    assert code == 0, err
    assert ("native" in text) == (family in NATIVE_WINDOWS)
    exported, config, _ = read_exported_config(out)
    assert exported.name == family
    assert config.sliding_window == 3
    assert 3 in config.layer_windows()


def test_sliding_window_flag_lists_the_families_with_windows(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(
        capsys, "model", "construct", "gpt_neox_tiny", "-o", tmp_path, "--sliding-window", 3
    )
    assert code == 2
    assert "windows: " + ", ".join(sorted(WINDOWED)) + "." in err


@pytest.mark.parametrize("arch", ["qwen3_5_tiny", "deepseek_v3_tiny"])
def test_sliding_window_flag_is_refused_where_the_attention_cannot_slide(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, arch: str
) -> None:
    # They have the shared decoder's field, which their layers would silently ignore.
    code, _, err = run(capsys, "model", "construct", arch, "-o", tmp_path, "--sliding-window", 3)
    assert code == 2
    assert "'sliding_window' is set, but" in err and "without sliding-window layers" in err
    assert len(err.strip().splitlines()) == 1
