"""A run's ``lm_type.json`` records its data's ``add_bos`` / ``add_eos``, and ``lmhub generate``
encodes prompts by them (not by the tokenizer's defaults); older records without them load as
before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lmhub.cli.main import main
from lmhub.data.tokenizers import ByteTokenizer
from lmhub.lm.ilm.collators import ILMSeq2SeqPredictionCollator
from lmhub.train.lm_state import LM_TYPE_FILE, as_trained, load_lm_run
from lmhub.train.run import train
from tests.train.helpers import tiny_config, write_pairs


def _prompts_seen(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """Spy on the ILM prediction collator: the prompt ids it is given."""
    seen: list[list[int]] = []
    collate = ILMSeq2SeqPredictionCollator.__call__

    def spy(self: ILMSeq2SeqPredictionCollator, examples: list[dict[str, Any]]) -> Any:
        seen.extend(list(e["prompt_ids"]) for e in examples)
        return collate(self, examples)

    monkeypatch.setattr(ILMSeq2SeqPredictionCollator, "__call__", spy)
    return seen


def test_generate_encodes_prompts_as_the_run_was_trained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tiny_config(tmp_path, write_pairs(tmp_path), lm_type="ilm", max_steps=2,
                         **{"data.add_bos": True})  # fmt: skip
    train(config)
    final = Path(config.output_dir) / "final"
    record = json.loads((final / LM_TYPE_FILE).read_text())
    assert record["data"] == {"add_bos": True, "add_eos": True}
    bos = ByteTokenizer().bos_token_id
    assert not ByteTokenizer().add_bos_token  # the byte tokenizer alone would add none

    seen = _prompts_seen(monkeypatch)
    assert main(["generate", str(final), "--prompt", "ab=", "--max-new-tokens", "2"]) == 0
    assert seen == [[bos, *b"ab="]]

    # A record from before the field: prompts are encoded the tokenizer's way, as then.
    del record["data"]
    (final / LM_TYPE_FILE).write_text(json.dumps(record))
    assert not load_lm_run(str(final)).tokenizer.add_bos_token
    seen.clear()
    assert main(["generate", str(final), "--prompt", "ab=", "--max-new-tokens", "2"]) == 0
    assert seen == [list(b"ab=")]
    capsys.readouterr()


def test_as_trained_copies_the_tokenizer_and_leaves_old_records_alone() -> None:
    tokenizer = ByteTokenizer()
    trained = as_trained(tokenizer, {"lm_type": "ilm", "data": {"add_bos": True, "add_eos": False}})
    assert (trained.add_bos_token, trained.add_eos_token) == (True, False)
    assert trained is not tokenizer and not tokenizer.add_bos_token
    assert as_trained(tokenizer, {"lm_type": "ilm"}) is tokenizer
    assert as_trained(tokenizer, None) is tokenizer
