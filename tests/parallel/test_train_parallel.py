"""``lmhub train`` under torchrun (gloo, CPU): FSDP2, tensor parallel and both take the same
steps as one process on the whole batch (per-step losses over 20 steps within fp32 rounding)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lmhub
from lmhub.config import apply_overrides
from lmhub.train.config import TrainConfig
from lmhub.train.run import train
from tests.parallel.torchrun import torchrun_train
from tests.train.helpers import metric_rows, tiny_config, write_text

STEPS = 20


def _config(tmp_path: Path, name: str) -> TrainConfig:
    data = write_text(tmp_path, chars=6000)
    config = tiny_config(
        tmp_path,
        data,
        max_steps=STEPS,
        batch_size=4,
        output_dir=str(tmp_path / name),
        # 260 = 2 x 130: the TP runs split the embedding and the output head by vocabulary too.
        model_config={"vocab_size": 260},
        checkpoint={"register_cards": False},
        # Validation (no gradients) between steps: the sharded head must be whole for the loss,
        # and training must go on with fresh weights after it.
        eval={"every_steps": 7},
    )
    return apply_overrides(config, ["data.valid_fraction=0.1"])


def _curves(output_dir: Path) -> tuple[list[float], list[float]]:
    """The per-step losses (then the validation losses at steps 7, 14, 20) and gradient norms
    (before clipping to 1.0) of a run."""
    rows = metric_rows(output_dir)
    valid = metric_rows(output_dir, "valid")
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    assert [r["step"] for r in valid] == [7, 14, 20]
    losses = [r["loss"] for r in rows] + [r["valid/lm/loss"] for r in valid]
    return losses, [r["grad_norm"] for r in rows]


Reference = tuple[Path, tuple[list[float], list[float]]]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    tmp_path = tmp_path_factory.mktemp("one")
    config = _config(tmp_path, "one")
    train(config)
    return tmp_path, _curves(Path(config.output_dir))


LAYOUTS = {
    "fsdp2": (2, []),
    "tp2": (2, ["parallel.tp_size=2"]),
    "fsdp2_tp2": (4, ["parallel.tp_size=2"]),
    # Each layer compiled (before sharding, as torchtitan orders it) over FSDP2's sharded weights.
    "fsdp2_compile": (2, ["compile=true"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_sharded_training_matches_one_process(layout: str, reference: Reference) -> None:
    tmp_path, (want, want_norms) = reference
    nproc, overrides = LAYOUTS[layout]
    config = _config(tmp_path, layout)
    torchrun_train(config, nproc, *overrides)
    got, norms = _curves(Path(config.output_dir))
    diff = max(abs(a - b) for a, b in zip(got, want))
    print(f"{layout}: largest per-step loss difference over {STEPS} steps: {diff:.3g}")
    assert diff < 2e-5, (layout, got, want)
    # The norms are clipped to 1.0 (they start above it): the sharded norm must be the global one.
    assert max(want_norms) > 1.0
    for norm, ref in zip(norms, want_norms):
        assert norm == pytest.approx(ref, rel=1e-4)
    # final/ is one whole HF directory, exported by rank 0 from the gathered shards.
    final = Path(config.output_dir) / "final"
    model = lmhub.load_model(final, device="cpu")
    ref_model = lmhub.load_model(tmp_path / "one" / "final", device="cpu")
    for (name, p), q in zip(model.state_dict().items(), ref_model.state_dict().values()):
        assert (p - q).abs().max().item() < 1e-4, name


@pytest.mark.slow
def test_fsdp2_bf16_mixed_precision(reference: Reference) -> None:
    # bf16 compute and fp32 reduction: close to the fp32 run, but not equal (the policy acts).
    tmp_path, (want, _) = reference
    config = _config(tmp_path, "bf16")
    torchrun_train(config, 2, "parallel.mixed_precision=bf16")
    got, _ = _curves(Path(config.output_dir))
    diff = max(abs(a - b) for a, b in zip(got, want))
    print(f"fsdp2 bf16: largest per-step loss difference over {STEPS} steps: {diff:.3g}")
    assert 1e-5 < diff < 5e-2
    final = lmhub.load_model(Path(config.output_dir) / "final", device="cpu")
    assert next(final.parameters()).dtype == torch.float32  # the sharded weights stay fp32
