"""The shared base tests, run on every registered LM type with two families' backbones: output
shapes, padding masked out, gradients reaching every parameter, and collators, loss and predictor
agreeing on their batches (``lmhub.lm.contract``)."""

from __future__ import annotations

import pytest

from lmhub.lm.contract import check_lm_type
from lmhub.lm.registry import get_lm_type, list_lm_types

# seq2seq needs an encoder-decoder and prompt/target data (tests/lm/test_seq2seq.py checks it);
# the shared contract builds decoder backbones and both data kinds.
DECODER_TYPES = [name for name in list_lm_types() if name != "seq2seq"]


@pytest.mark.parametrize("family", ["llama", "deepone"])
@pytest.mark.parametrize("name", DECODER_TYPES)
def test_every_lm_type_keeps_the_contract(name: str, family: str) -> None:
    check_lm_type(get_lm_type(name), family)


def test_the_contract_catches_a_loss_that_reads_padding() -> None:
    arlm = get_lm_type("arlm")

    def leaky_build(ctx):  # type: ignore[no-untyped-def]
        components = arlm.build(ctx)
        inner = components.loss

        class Leaky:
            def configure(self, trainer: object) -> None: ...

            def loss_fn(self, batch, *, dataloader_name=None):  # type: ignore[no-untyped-def]
                out = inner.loss_fn(batch, dataloader_name=dataloader_name)
                leak = batch["input_ids"].float().mean() * 1e-2
                return {"loss": out["loss"] + leak}

        components.loss = Leaky()
        return components

    leaky = type(arlm)(name="leaky", description="", causal=True, build=leaky_build)
    with pytest.raises(AssertionError, match="only padded positions changed"):
        check_lm_type(leaky)
