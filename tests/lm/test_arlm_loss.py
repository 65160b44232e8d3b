"""`ARLMLoss` on a tiny Llama: equal to the plain shifted cross-entropy, loss and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lmhub.lm.arlm import ARLMLoss, ARLMPretrainCollator, ARLMSeq2SeqCollator
from lmhub.models.decoder import DecoderLM
from tests.lm.models import tiny_llama


def plain_loss(model: DecoderLM, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    logits = model(batch["input_ids"], attention_mask=batch["attention_mask"])
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]),
        batch["labels"][:, 1:].reshape(-1),
        ignore_index=-100,
    )


def assert_same_loss_and_grads(model: DecoderLM, batch: dict[str, torch.Tensor]) -> None:
    out = ARLMLoss(model, chunk_size=3).loss_fn(batch)
    params = [p for p in model.parameters() if p.requires_grad]
    got_grads = torch.autograd.grad(out["loss"], params)
    want = plain_loss(model, batch)
    want_grads = torch.autograd.grad(want, params)
    torch.testing.assert_close(out["loss"], want, rtol=1e-6, atol=1e-5)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)
    n = int((batch["labels"][:, 1:] != -100).sum())
    assert int(out["num_tokens"]) == n
    torch.testing.assert_close(out["loss_sum"], out["loss"] * n)


@pytest.mark.parametrize("tie", [False, True])
def test_pretraining_batch_matches_plain_loss(tie: bool) -> None:
    torch.manual_seed(1)
    examples = [{"input_ids": torch.randint(0, 256, (n,)).tolist()} for n in (9, 13, 4)]
    batch = ARLMPretrainCollator(pad_token_id=258)(examples)
    assert_same_loss_and_grads(tiny_llama(tie_embeddings=tie), batch)


def test_seq2seq_batch_matches_plain_loss() -> None:
    examples = [
        {"prompt_ids": [256, 1, 2, 3], "target_ids": [4, 5, 257]},
        {"prompt_ids": [256, 9], "target_ids": [8, 7, 6, 5, 257]},
    ]
    batch = ARLMSeq2SeqCollator(pad_token_id=258)(examples)
    assert_same_loss_and_grads(tiny_llama(), batch)


def test_a_batch_without_targets_has_zero_loss(model: DecoderLM) -> None:
    batch = ARLMSeq2SeqCollator(pad_token_id=258)([{"prompt_ids": [1, 2], "target_ids": []}])
    with torch.no_grad():
        out = ARLMLoss(model).loss_fn(batch)
    assert out["loss"].item() == 0.0 and int(out["num_tokens"]) == 0


def test_a_family_with_its_own_logits_step_gets_it() -> None:
    model = tiny_llama()

    class SoftCapped(type(model)):  # type: ignore[misc]
        def logits(self, hidden: torch.Tensor) -> torch.Tensor:
            return 3.0 * torch.tanh(super().logits(hidden) / 3.0)

    model.__class__ = SoftCapped
    batch = ARLMPretrainCollator(pad_token_id=258)(
        [{"input_ids": [1, 2, 3, 4, 5, 6]}, {"input_ids": [7, 8, 9]}]
    )
    assert_same_loss_and_grads(model, batch)  # the plain loss calls model(...) -> logits()
