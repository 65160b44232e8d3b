"""``lmhub generate``: continue a prompt with a model and stream the text to stdout.

Example::

    lmhub generate path/to/hf_llama --prompt "Once upon a time" --max-new-tokens 50
    lmhub generate llama_tiny --prompt "hi" --seed 1        # random weights, byte tokenizer
    lmhub generate my-card --prompt "What is RoPE?" --chat --temperature 0.7 --top-p 0.9
"""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import torch
import typer
from rich.console import Console

from lmhub.errors import TokenizerError

BYTE_VOCAB = 259
"""The vocabulary size of lmhub's byte tokenizer (256 bytes + BOS, EOS, PAD)."""

_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _load(name: str, device: torch.device, dtype: torch.dtype | None) -> tuple[Any, Any]:
    """Return (model, its source) for a directory, card or arch; warn about random weights."""
    from lmhub.models.resolve import instantiate, resolve_model_source

    source = resolve_model_source(name)
    if source.checkpoint is None:
        _err.print(
            f"[yellow]warning:[/] '{name}' has no checkpoint here: its weights are random, so "
            "the text will be gibberish. Pass a card with a checkpoint, or a checkpoint directory."
        )
    return instantiate(source, device=device, dtype=dtype), source


def _tokenizer(model: Any, requested: str | None, source: Any) -> Any:
    from lmhub.data.tokenizers import load_tokenizer
    from lmhub.models.resolve import load_source_tokenizer

    if requested is not None:
        return load_tokenizer(requested)
    found = load_source_tokenizer(source)
    if found is not None:
        return found
    if getattr(model.config, "vocab_size", None) == BYTE_VOCAB:
        return load_tokenizer("byte")
    raise TokenizerError(
        "The model comes with no tokenizer. Pass one with --tokenizer (a tokenizer.json, a "
        "SentencePiece .model, a directory holding one, or 'byte')."
    )


def _eos(tokenizer: Any, model: Any) -> int | list[int] | None:
    if tokenizer.eos_token_id is not None:
        return int(tokenizer.eos_token_id)
    eos = getattr(getattr(model, "config", None), "eos_token_id", None)
    return eos if isinstance(eos, int | list) else None


def _generate_with_lm_type(
    name: str,
    prompt: str,
    device: torch.device,
    tokenizer: str | None,
    max_new_tokens: int,
    settings: Any,
) -> bool:
    """Answer ``prompt`` with the predictor of a run saved by a non-autoregressive LM type
    (its ``lm_type.json``); return whether it was one."""
    from lmhub.data.tokenizers import load_tokenizer
    from lmhub.errors import GenerationError
    from lmhub.models.resolve import resolve_model_source
    from lmhub.train.lm_state import load_lm_run, read_lm_type

    source = resolve_model_source(name)
    record = read_lm_type(source.checkpoint) if source.checkpoint is not None else None
    if record is None or record.get("lm_type") == "arlm":
        return False
    if settings.repetition_penalty is not None or settings.stop:
        raise GenerationError(
            f"{name} is a {record['lm_type']} model, whose predictor fills the answer all at "
            "once: --repetition-penalty and --stop do not apply. Leave them out."
        )
    sampling = {"temperature": settings.temperature, "top_k": settings.top_k,
                "top_p": settings.top_p}  # fmt: skip
    run = load_lm_run(
        name,
        device=device,
        tokenizer=load_tokenizer(tokenizer) if tokenizer is not None else None,
        max_new_tokens=max_new_tokens,
        options={k: v for k, v in sampling.items() if v is not None and k in _option_names(record)},
    )
    assert run.components.predictor is not None
    start = time.perf_counter()
    (text,) = run.components.predictor.generate([prompt])
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    _err.print(f"[dim]{run.lm_type.name} predictor: {time.perf_counter() - start:.2f} s")
    return True


def _option_names(record: dict[str, Any]) -> set[str]:
    from lmhub.lm.registry import get_lm_type

    return set(get_lm_type(record["lm_type"]).option_fields())


def generate(
    model: Annotated[str, typer.Argument(help="A card, an architecture, or an HF checkpoint dir.")],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The text to continue.")],
    max_new_tokens: Annotated[int, typer.Option(help="The most tokens to generate.")] = 64,
    temperature: Annotated[float, typer.Option(help="0 is greedy; higher is more random.")] = 0.0,
    top_k: Annotated[int | None, typer.Option(help="Sample among the k likeliest only.")] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling threshold.")] = None,
    repetition_penalty: Annotated[
        float | None, typer.Option(help="Above 1 discourages repeated tokens.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for sampling (and for random weights).")] = 0,
    device: Annotated[str, typer.Option(help="Where to run: cpu, cuda, cuda:1...")] = "cpu",
    dtype: Annotated[
        str | None, typer.Option(help="float32, bfloat16, ...; default: the checkpoint's.")
    ] = None,
    tokenizer: Annotated[
        str | None, typer.Option(help="Tokenizer file or directory, or 'byte'.")
    ] = None,
    chat: Annotated[
        bool, typer.Option("--chat", help="Wrap the prompt in the tokenizer's chat template.")
    ] = False,
    stop: Annotated[
        list[str] | None, typer.Option(help="Stop when this text appears (repeatable).")
    ] = None,
    compile_decode: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="Run decode steps through torch.compile: tens of seconds to start, faster "
            "steps after (long outputs).",
        ),
    ] = False,
) -> None:
    """Continue PROMPT with MODEL, streaming the new text to stdout."""
    from lmhub.data.tokenizers import IncrementalDecoder
    from lmhub.generation import GenerationOptions, generate_stream
    from lmhub.utils import as_device, as_dtype, check_seed

    # Check the settings before loading anything, so a typo fails at once.
    settings = GenerationOptions(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        stop=stop or None,
    )
    target = as_device(device)
    torch.manual_seed(check_seed(seed))  # random weights of an arch are reproducible too
    if _generate_with_lm_type(model, prompt, target, tokenizer, max_new_tokens, settings):
        return
    lm, source = _load(model, target, as_dtype(dtype))
    lm.eval()
    tok = _tokenizer(lm, tokenizer, source)
    if chat:
        text = tok.apply_chat_template([{"role": "user", "content": prompt}])
        ids = tok.encode(text)
    else:
        ids = tok.encode(prompt, add_bos=tok.add_bos_token and tok.bos_token_id is not None)
    if not ids:
        raise TokenizerError("The prompt encodes to no tokens. Pass a non-empty --prompt.")
    eos = _eos(tok, lm)
    generator = torch.Generator(device=target).manual_seed(seed)
    decoder = IncrementalDecoder(tok)
    start, count = time.perf_counter(), 0
    stream = generate_stream(
        lm,
        torch.tensor([ids], device=target),
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        top_k=settings.top_k,
        top_p=settings.top_p,
        repetition_penalty=settings.repetition_penalty,
        eos_token_id=eos,
        stop=settings.stop,
        generator=generator,
        tokenizer=tok,
        compile_decode=compile_decode,
    )
    for tokens in stream:
        count += 1
        sys.stdout.write(decoder.push(int(tokens[0])))
        sys.stdout.flush()
    sys.stdout.write(decoder.flush() + "\n")
    sys.stdout.flush()
    elapsed = time.perf_counter() - start
    _err.print(
        f"[dim]{count} tokens in {elapsed:.2f} s ({count / max(elapsed, 1e-9):.1f} tokens/s)"
    )


def register(app: typer.Typer) -> None:
    """Add ``lmhub generate`` to ``app``."""
    app.command()(generate)
