"""The FMS-style Hugging Face adapters on real lmhub encoders (BERT, RoBERTa, ModernBERT):
``pipeline("fill-mask")``, the masked-LM loss, sequence classification trained by one
transformers ``Trainer`` step (regression, single- and multi-label chosen from the labels), and
save_pretrained/from_pretrained through the Auto classes.

The fill-mask tokenizer is a WordPiece vocabulary of a few words, built in the test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import lmhub
import lmhub.hf

transformers = pytest.importorskip("transformers")

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "a"]
WORDS += ["dog", "ran", ".", "to", "be", "or", "not", "and", "it", "was", "good", "bad"]
VOCAB = len(WORDS)
SMALL = {"model_dim": 32, "num_heads": 4, "num_layers": 2, "ffn_inner_dim": 64}


def native(family: str = "bert", seed: int = 0, **overrides: Any) -> Any:
    hub = lmhub.get_model_hub(family)
    config = lmhub.apply_overrides(
        hub.get_arch_config(f"{family}_tiny"),
        {**SMALL, "vocab_size": VOCAB, "pad_token_id": 0, **overrides},
    )
    torch.manual_seed(seed)
    return hub.create_new_model(config).eval()


@pytest.fixture
def tokenizer() -> Any:
    return transformers.BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)})


@pytest.mark.parametrize("family", ["bert", "modernbert"])
def test_fill_mask_pipeline_ranks_the_models_own_logits(family: str, tokenizer: Any) -> None:
    model = native(family)
    hf = lmhub.hf.to_hf_api(model)
    assert isinstance(hf, lmhub.hf.adapters.LmhubForMaskedLM)
    pipe = transformers.pipeline("fill-mask", model=hf, tokenizer=tokenizer, top_k=3)
    text = "the cat [MASK] on the mat"
    results = pipe(text)
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    where = int((ids[0] == tokenizer.mask_token_id).nonzero())
    with torch.no_grad():
        probs = model(ids)[0, where].softmax(-1)
    top = probs.topk(3)
    assert [r["token"] for r in results] == top.indices.tolist()
    assert [r["score"] for r in results] == pytest.approx(top.values.tolist(), rel=1e-5)
    assert results[0]["sequence"] == text.replace("[MASK]", WORDS[results[0]["token"]])


def test_segment_ids_from_the_tokenizer_reach_bert(tokenizer: Any) -> None:
    model = native("bert")
    hf = lmhub.hf.to_hf_api(model)
    batch = tokenizer(
        ["the cat sat", "a dog"], ["on the mat", "ran ."], return_tensors="pt", padding=True
    )
    assert batch["token_type_ids"].any()
    with torch.no_grad():
        got = hf(**batch).logits
        want = model(
            batch["input_ids"],
            attention_mask=batch["attention_mask"],
            token_type_ids=batch["token_type_ids"],
        )
        without = model(batch["input_ids"], attention_mask=batch["attention_mask"])
    assert torch.equal(got, want) and not torch.allclose(got, without)


def test_masked_lm_labels_give_the_unshifted_loss() -> None:
    model = native("bert")
    hf = lmhub.hf.to_hf_api(model)
    ids = torch.randint(5, VOCAB, (2, 9), generator=torch.Generator().manual_seed(0))
    labels = torch.full_like(ids, -100)
    labels[:, 3], labels[1, 6] = ids[:, 3], ids[1, 6]
    masked = ids.clone()
    masked[labels != -100] = 4
    out = hf(input_ids=masked, labels=labels)
    logits = model(masked)
    want = F.cross_entropy(logits[labels != -100], ids[labels != -100])
    torch.testing.assert_close(out.loss, want)


class Rows(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, labels: list[Any]) -> None:
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = torch.tensor([2, *[(5 + 3 * i + j) % VOCAB for j in range(10)], 3])
        return {"input_ids": ids, "labels": torch.tensor(self.labels[i])}


@pytest.mark.parametrize(
    ("family", "num_labels", "labels", "problem_type"),
    [
        ("bert", 1, [[0.5], [-1.0], [2.0], [0.0]], "regression"),
        ("bert", 3, [0, 2, 1, 2], "single_label_classification"),
        ("modernbert", 3, [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]] * 2, "multi_label_classification"),
        ("bert", 2, [1, 0, 0, 1], "single_label_classification"),
    ],
)
def test_one_trainer_step_of_sequence_classification(
    tmp_path: Path, family: str, num_labels: int, labels: list[Any], problem_type: str
) -> None:
    model = native(family)
    hf = lmhub.hf.to_hf_api(model, task="sequence-classification", num_labels=num_labels)
    assert isinstance(hf, lmhub.hf.adapters.LmhubEncoderForSequenceClassification)
    before = {n: p.detach().clone() for n, p in hf.named_parameters()}
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=1,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = transformers.Trainer(model=hf, args=args, train_dataset=Rows(labels))
    result = trainer.train()
    assert result.global_step == 1 and torch.isfinite(torch.tensor(result.training_loss))
    assert hf.config.problem_type == problem_type
    # The fresh head and the native encoder both trained (the encoder's own masked-LM head
    # is not on the classification path and keeps its values).
    changed = {n for n, p in hf.named_parameters() if not torch.equal(p, before[n])}
    assert "lm_head.weight" in changed  # the fresh head (a Linear without bias)
    assert any(".layers.0.attn.q_proj.weight" in n for n in changed)
    with torch.no_grad():
        logits = hf(input_ids=torch.stack([Rows(labels)[0]["input_ids"]])).logits
    assert logits.shape == (1, num_labels)


@pytest.mark.parametrize("flavour", ["bert", "roberta"])
def test_save_pretrained_and_auto_classes_round_trip(tmp_path: Path, flavour: str) -> None:
    lmhub.hf.register()
    model = native("bert", flavour=flavour, pad_token_id=1)
    ids = torch.randint(5, VOCAB, (2, 8), generator=torch.Generator().manual_seed(1))
    ids[1, 6:] = 1
    mask = (ids != 1).long()
    for task, auto in [
        ("masked_lm", transformers.AutoModelForMaskedLM),
        ("sequence_classification", transformers.AutoModelForSequenceClassification),
    ]:
        hf = lmhub.hf.to_hf_api(model, task=task, num_labels=3)
        hf.save_pretrained(tmp_path / task)
        back = auto.from_pretrained(tmp_path / task).eval()
        assert type(back) is type(hf)
        assert back.config.lmhub_config["flavour"] == flavour
        with torch.no_grad():
            want = hf(input_ids=ids, attention_mask=mask).logits
            assert torch.equal(back(input_ids=ids, attention_mask=mask).logits, want)
    base = transformers.AutoModel.from_pretrained(tmp_path / "masked_lm")
    assert isinstance(base, lmhub.hf.adapters.LmhubEncoderModel)
