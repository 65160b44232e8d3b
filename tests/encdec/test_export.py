"""Exports of the encoder-decoder families: native Hugging Face directories (T5, M2M100) that
transformers loads with equal logits and that come back into lmhub exactly, and remote-code
directories (the transformer family's post-norm and separate-vocabulary forms, which M2M100
cannot express) loaded in a fresh process where lmhub is not importable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import lmhub
import lmhub.hf
from lmhub.checkpoint.save_load import model_tensors
from lmhub.generation import generate_seq2seq

pytest.importorskip("transformers")

VOCAB = 80
SHAPE = {
    "model_dim": 32, "num_layers": 2, "num_decoder_layers": 2, "ffn_inner_dim": 48,
    "vocab_size": VOCAB, "pad_token_id": 1, "eos_token_id": 2, "bos_token_id": 0,
    "decoder_start_token_id": 2,
}  # fmt: skip


def tiny(family: str, **overrides: Any) -> Any:
    hub = lmhub.get_model_hub(family)
    config = lmhub.apply_overrides(hub.get_arch_config(f"{family}_tiny"), {**SHAPE, **overrides})
    torch.manual_seed(0)
    model = hub.create_new_model(config).eval()
    with torch.no_grad():  # non-trivial norms and biases, so a mismapped one shows
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.uniform_(0.5, 1.5)
    return model


def inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    src, tgt = (
        torch.randint(3, VOCAB, (2, 7), generator=g),
        torch.randint(3, VOCAB, (2, 5), generator=g),
    )
    mask = torch.ones_like(src)
    mask[1, 5:] = 0
    src[1, 5:] = 1
    return src, mask, tgt


NATIVE = [
    pytest.param("t5", {"head_dim": 8}, "T5ForConditionalGeneration", id="t5"),
    pytest.param("transformer", {"pos_offset": 2}, "M2M100ForConditionalGeneration", id="m2m_100"),
]


@pytest.mark.parametrize(("family", "overrides", "hf_class"), NATIVE)
def test_native_export_loads_in_transformers_and_back(
    family: str, overrides: dict[str, Any], hf_class: str, tmp_path: Path
) -> None:
    import transformers

    model = tiny(family, **overrides)
    result = lmhub.hf.export(model, tmp_path / "out")
    assert result.kind == "native"
    hf = transformers.AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "out").eval()
    assert type(hf).__name__ == hf_class
    src, mask, tgt = inputs()
    with torch.no_grad():
        want = model(src, decoder_input_ids=tgt, attention_mask=mask)
        got = hf(input_ids=src, attention_mask=mask, decoder_input_ids=tgt).logits
        assert (got - want).abs().max().item() <= 1e-5
        hf_greedy = hf.generate(input_ids=src, attention_mask=mask, max_new_tokens=6)
    assert torch.equal(
        hf_greedy, generate_seq2seq(model, src, attention_mask=mask, max_new_tokens=6)
    )
    back = lmhub.load_model(tmp_path / "out", progress=False)
    assert back.config == model.config
    ours, theirs = model_tensors(model)[0], model_tensors(back)[0]
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_transformer_configs_m2m100_cannot_express_export_as_remote_code(tmp_path: Path) -> None:
    for overrides in ({"norm_order": "post"}, {"share_embeddings": False}, {"pos_offset": 0}):
        result = lmhub.hf.export(tiny("transformer", **overrides), tmp_path / str(overrides))
        assert result.kind == "remote_code", overrides
    with pytest.raises(lmhub.errors.ConfigError, match="norm_order") as info:
        lmhub.hf.export(tiny("transformer", norm_order="post"), tmp_path / "x", remote_code=False)
    assert info.value.field == "norm_order"


CHILD = r"""
import importlib.util, json, os, sys
# Make lmhub unimportable: drop every path entry that provides it (the editable install's .pth).
sys.path[:] = [
    p for p in sys.path if not os.path.isfile(os.path.join(p or ".", "lmhub", "__init__.py"))
]
import torch
from transformers import AutoModelForSeq2SeqLM
report = {"lmhub_importable": importlib.util.find_spec("lmhub") is not None, "cases": {}}
for name, directory, data in json.loads(sys.argv[1]):
    want = torch.load(data)
    model = AutoModelForSeq2SeqLM.from_pretrained(directory, trust_remote_code=True).eval()
    with torch.no_grad():
        logits = model(input_ids=want["src"], attention_mask=want["mask"],
                       decoder_input_ids=want["tgt"]).logits
        beams = model.generate(input_ids=want["src"], attention_mask=want["mask"],
                               max_new_tokens=6, num_beams=3, early_stopping=True)
    report["cases"][name] = {
        "class": type(model).__name__,
        "max_diff": (logits - want["logits"]).abs().max().item(),
        "beams_equal": beams.tolist() == want["beams"].tolist(),
    }
report["lmhub_modules"] = sorted(m for m in sys.modules if m.split(".")[0] == "lmhub")
print("REPORT " + json.dumps(report))
"""


def test_remote_code_exports_load_without_lmhub(tmp_path: Path) -> None:
    cases = []
    two_vocabs = {"share_embeddings": False, "source_vocab_size": 70}
    variants = {
        "transformer_post_norm": ("transformer", {"norm_order": "post"}),
        "transformer_two_vocabs": ("transformer", two_vocabs),
        "t5": ("t5", {}),
    }
    for name, (family, overrides) in variants.items():
        model = tiny(family, **overrides)
        directory = tmp_path / name
        result = lmhub.hf.export(model, directory, remote_code=True)
        assert result.kind == "remote_code"
        src, mask, tgt = inputs()
        src = src.clamp(max=69)
        with torch.no_grad():
            logits = model(src, decoder_input_ids=tgt, attention_mask=mask)
        beams = generate_seq2seq(
            model, src, attention_mask=mask, max_new_tokens=6, num_beams=3, early_stopping=True
        )
        data = tmp_path / f"{name}.pt"
        torch.save({"src": src, "mask": mask, "tgt": tgt, "logits": logits, "beams": beams}, data)
        cases.append((name, str(directory), str(data)))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    run = subprocess.run(
        [sys.executable, "-I", str(script), json.dumps(cases)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    report = json.loads(run.stdout.split("REPORT ", 1)[1])
    assert report["lmhub_importable"] is False and report["lmhub_modules"] == []
    for name, out in report["cases"].items():
        assert out["class"].endswith("ForConditionalGeneration"), name
        assert out["max_diff"] <= 1e-5, name
        assert out["beams_equal"], name
