"""``lmhub generate``: MODEL forms, tokenizer resolution, streaming output, chat, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import lmhub
from lmhub.cli.main import main
from lmhub.data.tokenizers import ByteTokenizer, load_tokenizer
from tests.fixtures import SENTENCEPIECE_VOCAB_SIZE
from tests.oracle.hf_models import save_tiny_hf_llama


def run(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, " ".join(err.split())


def test_arch_with_random_weights_streams_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "generate", "llama_tiny", "--prompt", "Hi", "--max-new-tokens", 6)
    assert code == 0, err
    assert "weights are random" in err and "6 tokens in" in err
    hub = lmhub.get_model_hub("llama")
    torch.manual_seed(0)
    model = hub.create_new_model(hub.get_model_config("llama_tiny")).eval()
    tok = ByteTokenizer()
    ids = torch.tensor([tok.encode("Hi")])
    want = lmhub.generate(model, ids, max_new_tokens=6, eos_token_id=tok.eos_token_id)
    assert out == tok.decode(want[0, 2:]) + "\n"


def test_checkpoint_dir_with_tokenizer_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    save_tiny_hf_llama(tmp_path, vocab_size=259)
    argv = ["generate", tmp_path, "-p", "abc", "--max-new-tokens", 5, "--dtype", "float32"]
    code, out, err = run(capsys, *argv, "--tokenizer", "byte", "--temperature", 0.9, "--seed", 3)
    assert code == 0, err
    assert "random" not in err
    model = lmhub.load_model(tmp_path).eval()
    want = lmhub.generate(
        model,
        torch.tensor([[97, 98, 99]]),
        max_new_tokens=5,
        temperature=0.9,
        eos_token_id=257,
        generator=torch.Generator().manual_seed(3),
    )
    assert out == ByteTokenizer().decode(want[0, 3:]) + "\n"
    # Without --tokenizer: the directory has none, but a 259-token vocabulary means bytes.
    assert run(capsys, *argv)[0] == 0


def test_chat_applies_the_checkpoint_tokenizers_template(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sp_model_file: Path,
) -> None:
    save_tiny_hf_llama(
        tmp_path, vocab_size=SENTENCEPIECE_VOCAB_SIZE, hidden_size=32, intermediate_size=32
    )
    shutil.copy(sp_model_file, tmp_path / "tokenizer.model")
    template = "{{ bos_token }}{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}"
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": template}))
    seen: list[torch.Tensor] = []
    real = lmhub.generation.generate_stream

    def spy(model: Any, ids: torch.Tensor, **kwargs: Any) -> Any:
        seen.append(ids)
        return real(model, ids, **kwargs)

    monkeypatch.setattr(lmhub.generation, "generate_stream", spy)
    code, _, err = run(capsys, "generate", tmp_path, "-p", "Hello", "--chat", "--max-new-tokens", 3)
    assert code == 0, err
    tok = load_tokenizer(tmp_path)
    assert seen[0][0].tolist() == tok.encode("<s>[INST] Hello [/INST]")
    assert seen[0][0, 0].item() == 1  # the template's BOS became the BOS id


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["no_such_model", "-p", "x"], "not a known model card, architecture"),
        (["llama_tiny", "-p", "x", "--chat"], "no chat template"),
        (["llama_tiny", "-p", "x", "--top-p", "2"], "top_p is 2.0"),
        (["llama_tiny", "-p", "x", "--dtype", "float7"], "not a known dtype"),
        (["llama_tiny", "-p", "", "--max-new-tokens", "2"], "no tokens"),
    ],
)
def test_user_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, "generate", *argv)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_checkpoint_without_tokenizer_asks_for_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    save_tiny_hf_llama(tmp_path)  # vocabulary of 160: not bytes
    code, _, err = run(capsys, "generate", tmp_path, "-p", "x")
    assert code == 2 and "--tokenizer" in err


@pytest.mark.slow  # compiles the decode step (about 15 s)
def test_compile_flag_gives_the_eager_tokens(
    capsys: pytest.CaptureFixture[str], recwarn: pytest.WarningsRecorder
) -> None:
    from lmhub.generation.compiled import CompileFallbackWarning

    argv = ["generate", "llama_tiny", "--prompt", "Hello", "--max-new-tokens", 8]
    code, eager, err = run(capsys, *argv)
    assert code == 0, err
    code, compiled, err = run(capsys, *argv, "--compile")
    assert code == 0, err
    assert "8 tokens in" in err
    assert not [w for w in recwarn if issubclass(w.category, CompileFallbackWarning)]
    assert compiled == eager
