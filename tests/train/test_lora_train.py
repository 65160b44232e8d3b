"""LoRA through ``lmhub train``: validation loss falls, checkpoints hold only the adapters,
PEFT on transformers reads the adapter with equal logits, merge_on_export exports an HF
directory, ``lmhub generate RUN@last`` works, and a SIGKILLed LoRA run resumes bit-equal."""

from __future__ import annotations

import gzip
import importlib.resources
from pathlib import Path

import pytest
import torch

import lmhub
from lmhub.cli.main import main
from lmhub.config import apply_overrides
from lmhub.errors import ConfigError
from lmhub.peft import lora_layers
from lmhub.train.config import TrainConfig, check_train_config
from lmhub.train.resume import list_checkpoints
from lmhub.train.run import build_trainer, fit_and_export, train
from tests.train.helpers import metric_rows, tiny_config
from tests.train.test_resume import _run_killed

LORA = {"lora": {"rank": 4, "alpha": 8}}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """The first 20,000 characters of the demo corpus shipped in the package."""
    packed = importlib.resources.files("lmhub.train.examples") / "tinyshakespeare.txt.gz"
    text = gzip.decompress(packed.read_bytes()).decode("utf-8")[:20_000]
    path = tmp_path / "shakespeare.txt"
    path.write_text(text, encoding="utf-8")
    return path


def _ids() -> torch.Tensor:
    return torch.tensor([[5, 17, 42, 99, 3, 250, 7, 64, 128, 1]])


def test_lora_run_lowers_validation_loss_and_saves_only_adapters(
    tmp_path: Path, corpus: Path
) -> None:
    # A base that has learnt something (a random one's logits are too small for LoRA to move:
    # its lm_head is frozen), fully pre-trained on the corpus first...
    common = {"data.valid_fraction": 0.1, "eval.max_batches": 4, "log.every_steps": 10,
              "checkpoint.register_cards": False, "batch_size": 8,
              "lr_schedule.kind": "constant"}  # fmt: skip
    pretrain = tiny_config(
        tmp_path,
        corpus,
        max_steps=60,
        output_dir=str(tmp_path / "pre"),
        **{**common, "optimizer.lr": 2e-2},
    )
    base = train(pretrain)
    # ...then fine-tuned with LoRA from its exported directory.
    config = tiny_config(
        tmp_path, corpus, model=str(base), max_steps=30, **LORA, **{
           **common, "checkpoint.every_steps": 15, "model_config": {}, "optimizer.lr": 3e-2},
    )  # fmt: skip
    trainer, _ = build_trainer(config)
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n for n in trainable)
    before = trainer.evaluate()[0]["valid/lm/loss"]
    frozen = {n: p.detach().clone() for n, p in trainer.model.named_parameters()
              if not p.requires_grad}  # fmt: skip
    final = fit_and_export(trainer)

    after = metric_rows(tmp_path / "run", split="valid")[-1]
    assert after["step"] == 30 and after["valid/lm/loss"] < before - 0.05, (before, after)
    for name, param in trainer.model.named_parameters():  # the base did not move
        if name in frozen:
            assert torch.equal(param, frozen[name]), name
    step = list_checkpoints(tmp_path / "run")[-1]
    assert sorted(p.name for p in step.iterdir() if p.suffix in {".safetensors", ".pt", ""}) == [
        "adapter",
        "optimizer.pt",
        "trainable.safetensors",
        "trainer_state.pt",
    ]  # fmt: skip  (no full model weights)
    optimizer = torch.load(step / "optimizer.pt", weights_only=True)
    assert sum(len(g["params"]) for g in optimizer["param_groups"]) == len(trainable)
    assert (final / "adapter" / "adapter_config.json").is_file()
    assert not (final / "model.safetensors").exists()  # not merged


def test_lora_adapter_loads_into_peft_and_run_card_generates(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    config = tiny_config(tmp_path, corpus, max_steps=6, run_name="loratiny", **LORA)
    final = train(config)
    adapter = final / "adapter"
    assert peft.PeftConfig.from_pretrained(adapter).base_model_name_or_path == str(
        (tmp_path / "run" / "base").resolve()
    )
    # The run's card loads the base and applies the adapter.
    ours = lmhub.load_model("loratiny@last", dtype=torch.float32)
    assert len(lora_layers(ours)) == 2 * 7
    base = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path / "run" / "base", attn_implementation="eager", torch_dtype=torch.float32
    )
    theirs = peft.PeftModel.from_pretrained(base, adapter).eval()
    with torch.no_grad():
        want = theirs(_ids()).logits
        got = ours.eval()(_ids())
    got = got.logits if hasattr(got, "logits") else got
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # The adapters did train: without them the logits differ.
    with torch.no_grad(), theirs.disable_adapter():
        assert not torch.allclose(theirs(_ids()).logits, want, atol=1e-4)

    assert main(["generate", "loratiny@last", "--prompt", "ROMEO", "--max-new-tokens", "4"]) == 0
    assert main(["generate", "loratiny@step_6", "--prompt", "A", "--max-new-tokens", "2"]) == 0


def test_merge_on_export_writes_an_hf_directory_with_the_adapted_logits(
    tmp_path: Path, corpus: Path
) -> None:
    transformers = pytest.importorskip("transformers")
    config = tiny_config(
        tmp_path, corpus, max_steps=4, run_name="loramerged",
        lora={"rank": 4, "alpha": 8, "merge_on_export": True, "targets": ["q_proj", "down_proj"]},
    )  # fmt: skip
    final = train(config)
    adapted = lmhub.load_model(tmp_path / "run" / "base", dtype=torch.float32)
    adapted = lmhub.peft.load_adapter(adapted, final / "adapter").eval()
    merged = transformers.AutoModelForCausalLM.from_pretrained(
        final, attn_implementation="eager", torch_dtype=torch.float32
    ).eval()
    card = lmhub.load_model("loramerged@last", dtype=torch.float32).eval()
    assert not lora_layers(card)  # @last is the merged model
    with torch.no_grad():
        want = adapted(_ids())
        want = want.logits if hasattr(want, "logits") else want
        torch.testing.assert_close(merged(_ids()).logits, want, atol=1e-5, rtol=1e-5)
        got = card(_ids())
        got = got.logits if hasattr(got, "logits") else got
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_lora_resume_after_sigkill_logs_bit_equal_losses(tmp_path: Path, corpus: Path) -> None:
    settings = {
        "max_steps": 6, "checkpoint.every_steps": 2, "checkpoint.keep_last": 2,
        "lora": {"rank": 4, "alpha": 8, "dropout": 0.1},  # the RNG must be restored
    }  # fmt: skip
    whole = tiny_config(tmp_path, corpus, output_dir=str(tmp_path / "whole"), **settings)
    train(whole)
    expected = metric_rows(tmp_path / "whole")

    cut = tiny_config(tmp_path, corpus, output_dir=str(tmp_path / "cut"), **settings)
    _run_killed(tmp_path, cut, step=3, where="step")  # after step 3, last checkpoint at 2
    assert [r["step"] for r in metric_rows(tmp_path / "cut")] == [1, 2, 3]
    train(cut)  # resume: auto, the base re-created from the seed
    resumed = metric_rows(tmp_path / "cut")
    assert [r["step"] for r in resumed] == list(range(1, 7))
    for ours, theirs in zip(resumed, expected):  # bit-equal: ==, not approx
        assert (ours["loss"], ours["grad_norm"], ours["tokens_seen"]) == (
            theirs["loss"], theirs["grad_norm"], theirs["tokens_seen"],
        )  # fmt: skip


def test_bad_lora_setting_names_the_field(tmp_path: Path) -> None:
    config = apply_overrides(TrainConfig(), ["data.train=x.txt", "lora.rank=0"])
    with pytest.raises(ConfigError) as err:
        check_train_config(config)
    assert err.value.field == "lora.rank" and "lora" in str(err.value)
