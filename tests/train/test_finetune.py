"""Fine-tuning a Hugging Face checkpoint built in-test: ``model:`` is its directory, its own
tokenizer and chat template are picked up, and the final export loads in transformers with
logits equal to lmhub's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lmhub
from lmhub.cli.main import main
from lmhub.data.tokenizers import ByteTokenizer
from lmhub.hf.tokenizer_files import write_tokenizer_files
from tests.train.helpers import write_text

transformers = pytest.importorskip("transformers")

TEMPLATE = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"


def _hf_llama(directory: Path) -> None:
    config = transformers.LlamaConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, vocab_size=259, max_position_embeddings=64, bos_token_id=256,
        eos_token_id=257, pad_token_id=258, tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(3)
    transformers.LlamaForCausalLM(config).save_pretrained(directory)
    write_tokenizer_files(ByteTokenizer(chat_template=TEMPLATE), directory)


def test_finetune_hf_checkpoint_exports_what_transformers_loads(tmp_path: Path) -> None:
    base = tmp_path / "hf_llama"
    _hf_llama(base)
    original = transformers.AutoModelForCausalLM.from_pretrained(base).state_dict()
    data = write_text(tmp_path)
    args = [
        "train", "arlm_tiny", f"model={base}", "model_config={}", "tokenizer=null",
        f"data.train={data}", "data.valid_fraction=0", f"data.cache_dir={tmp_path / 'tok'}",
        "seq_len=32", "batch_size=2", "max_steps=3", "optimizer.lr=1e-5",
        "lr_schedule.warmup_steps=0", "log.progress=none", f"output_dir={tmp_path / 'ft'}",
    ]  # fmt: skip
    assert main(args) == 0
    final = tmp_path / "ft" / "final"
    assert (final / "generation_config.json").is_file()
    assert (final / "chat_template.jinja").read_text() == TEMPLATE  # the model's own template

    theirs = transformers.AutoModelForCausalLM.from_pretrained(final).eval()
    ours = lmhub.load_model(final).eval()
    ids = torch.tensor([list(b"To be, or not to be")])
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), theirs(ids).logits, atol=1e-5, rtol=0)
    # Fine-tuned from the checkpoint's weights, not from a fresh initialisation.
    tuned = theirs.state_dict()
    diffs = [float((tuned[k] - v).abs().max()) for k, v in original.items()]
    assert 0 < max(diffs) < 1e-3
