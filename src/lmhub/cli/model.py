"""``lmhub model``: build and export models. ``model construct`` lives here.

Other ``model`` subcommands live in their own modules and add themselves to :data:`model_app`
(``model_app.command("test")(test)`` in ``cli/model_test.py``, registered from ``cli/main.py``).

Example::

    lmhub model construct llama_tiny --output-dir out/llama_tiny --num-hidden-layers 2
    lmhub model construct deepone_tiny --output-dir out/d --device cpu --save-checkpoint
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
import yaml
from rich.console import Console

from lmhub.config import apply_overrides, parse_override
from lmhub.errors import ConfigError, LmhubError
from lmhub.models.family import ModelFamily
from lmhub.models.hf_dir import HF_KEY_FIELDS
from lmhub.models.llama.interop import rope_from_hf
from lmhub.models.resolve import ModelSource, load_source_tokenizer, resolve_model_source

console = Console(highlight=False)

model_app = typer.Typer(
    name="model",
    help="Build, export and exercise models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# Hugging Face's attention implementation names -> the lmhub attn_impl values that implement them.
ATTN_IMPLEMENTATIONS: dict[str, tuple[str, ...]] = {
    "eager": ("eager",),
    "sdpa": ("sdpa",),
    "flex": ("flex", "flex_attention"),
    "flash_attention_2": ("flash_attention_2", "flash", "flash2"),
}


def _source_tokenizer(source: ModelSource) -> Any:
    try:
        return load_source_tokenizer(source)
    except LmhubError as exc:
        if source.kind == "checkpoint":
            raise
        console.print(
            f"[yellow]note:[/] the card's tokenizer is not available ({exc}); none is written."
        )
        return None


def _yaml_value(flag: str, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"The value of {flag} is not valid YAML or JSON: {exc}", value=text
        ) from None


def _rope_scaling(config: Any, value: Any) -> Any:
    """Accept lmhub's RopeScaling fields or Hugging Face's ``{"rope_type": ..., ...}``."""
    if isinstance(value, dict) and ("rope_type" in value or "type" in value):
        theta = getattr(config, "rope_theta", None)
        hf = {"rope_scaling": value, **({"rope_theta": theta} if theta is not None else {})}
        return rope_from_hf(hf)[1]
    if value is not None and not isinstance(value, dict):
        raise ConfigError(
            f"--rope-scaling takes a mapping such as '{{rope_type: linear, factor: 2}}' or null, "
            f"not {value!r}.",
            field="rope_scaling",
            value=value,
        )
    return value


def _no_windows(family: ModelFamily[Any, Any]) -> str:
    from lmhub.models.registry import get_family, list_families

    windowed = [
        name
        for name in list_families()
        if getattr(get_family(name).config_class, "has_sliding_windows", False)
    ]
    return (
        f"The '{family.name}' family has no sliding-window attention, so --sliding-window "
        f"cannot apply. Leave it out, or pick a family with windows: {', '.join(windowed)}."
    )


def _attn_impl(value: str) -> str:
    from lmhub.nn.attention import ATTN_IMPLS

    candidates = ATTN_IMPLEMENTATIONS.get(value)
    if candidates is None:
        raise ConfigError(
            f"--attn-implementation '{value}' is not one of: {', '.join(ATTN_IMPLEMENTATIONS)}.",
            field="attn_impl",
            value=value,
        )
    for candidate in candidates:
        if candidate in ATTN_IMPLS:
            return candidate
    raise ConfigError(
        f"--attn-implementation '{value}' is not available: lmhub's attention runs "
        f"{', '.join(ATTN_IMPLS)}. Pick one of those.",
        field="attn_impl",
        value=value,
    )


@dataclass(frozen=True)
class ConfigFlag:
    """A ``model construct`` option that sets one config field."""

    name: str
    """The option, e.g. ``--hidden-size`` (named after the Hugging Face key where one exists)."""

    field: str
    """The lmhub config field it sets; a family whose config lacks it rejects the option."""

    type: Any
    """The value type typer parses (``str`` for YAML/JSON values that ``parse`` reads)."""

    help: str = ""
    """The option's help; the field name when empty."""

    parse: Callable[[Any, Any], Any] | None = None
    """Turns ``(config, value)`` into the field's value, where typer's parsing is not enough."""

    absent: Callable[[ModelFamily[Any, Any]], str] | None = None
    """The one-line error for a family whose config lacks the field (default: a generic one
    listing the fields the family has)."""

    @property
    def param(self) -> str:
        """The Python parameter name typer passes the value under."""
        return self.name.removeprefix("--").replace("-", "_")


def _hf_flag(key: str, type_: Any) -> ConfigFlag:
    """An option named after a Hugging Face config.json key, setting its HF_KEYS field."""
    field = HF_KEY_FIELDS[key]
    return ConfigFlag("--" + key.replace("_", "-"), field, type_, f"{field} (HF {key})")


CONFIG_FLAGS: tuple[ConfigFlag, ...] = (
    _hf_flag("hidden_size", int),
    _hf_flag("num_attention_heads", int),
    ConfigFlag("--num-kv-heads", "num_kv_heads", int),
    ConfigFlag("--d-head", "head_dim", int),
    _hf_flag("num_hidden_layers", int),
    ConfigFlag("--dim-feedforward", "ffn_inner_dim", int),
    ConfigFlag("--rope-theta", "rope_theta", float),
    _hf_flag("rms_norm_eps", float),
    ConfigFlag(
        "--rope-scaling",
        "rope_scaling",
        str,
        "rope_scaling as YAML/JSON, e.g. '{rope_type: linear, factor: 2}', or null",
        lambda config, text: _rope_scaling(config, _yaml_value("--rope-scaling", text)),
    ),
    ConfigFlag(
        "--attn-implementation",
        "attn_impl",
        str,
        "eager, sdpa, flex or flash_attention_2 (attn_impl)",
        lambda config, value: _attn_impl(value),
    ),
    ConfigFlag(
        "--sliding-window",
        "sliding_window",
        int,
        "positions a sliding-window layer sees, the current one included (sliding_window)",
        absent=lambda family: _no_windows(family),
    ),
    _hf_flag("tie_word_embeddings", bool),
    _hf_flag("attention_dropout", float),
)
"""The customisation options of ``model construct``; its signature is built from this table."""


def _flag_parameter(flag: ConfigFlag) -> inspect.Parameter:
    decls = [f"{flag.name}/--no-{flag.name[2:]}"] if flag.type is bool else [flag.name]
    option = typer.Option(*decls, help=flag.help or flag.field)
    return inspect.Parameter(
        flag.param,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[flag.type | None, option],
    )


def _with_config_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``command`` (which takes ``**flags``) one typer option per :data:`CONFIG_FLAGS` row."""
    signature = inspect.signature(command, eval_str=True)
    params = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    command.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*params, *map(_flag_parameter, CONFIG_FLAGS)]
    )
    return command


def apply_cli_overrides(
    family: ModelFamily[Any, Any],
    config: Any,
    flags: dict[str, Any],
    sets: list[str] | None = None,
) -> Any:
    """Apply the :data:`CONFIG_FLAGS` values (``{"--hidden-size": 512, ...}``, unset ones
    ``None``) and ``--set FIELD=VALUE`` strings to ``config``, then validate it.

    Raises:
        ConfigError: for a flag whose field the family's config lacks, naming flag and family.
    """
    fields = {f.name for f in dataclasses.fields(config)}
    items: list[tuple[str, Any]] = []
    for flag in CONFIG_FLAGS:
        value = flags.get(flag.name)
        if value is None:
            continue
        if flag.field not in fields and flag.absent is not None:
            raise ConfigError(flag.absent(family), field=flag.field, value=value)
        if flag.field not in fields:
            raise ConfigError(
                f"{flag.name} sets the config field '{flag.field}', which the '{family.name}' "
                f"family's {type(config).__name__} does not have, so the option cannot apply. "
                "Leave it out; the fields you can set (with --set FIELD=VALUE) are: "
                f"{', '.join(sorted(fields))}.",
                field=flag.field,
                value=value,
            )
        items.append((flag.field, flag.parse(config, value) if flag.parse else value))
    config = apply_overrides(config, items)
    config = apply_overrides(config, [parse_override(s) for s in sets or []])
    validate = getattr(config, "validate", None)
    if callable(validate):
        validate()
    return config


def build_model(
    family: ModelFamily[Any, Any],
    config: Any,
    *,
    device: torch.device,
    dtype: torch.dtype | None,
    init_weights: bool,
    checkpoint: Path | None,
    seed: int,
) -> torch.nn.Module:
    """Build the model: on meta, from a checkpoint, uninitialised, or randomly initialised.

    ``dtype=None`` keeps a checkpoint's stored dtypes, and gives new models torch's default.
    """
    from lmhub.models.hub import get_model_hub
    from lmhub.utils import no_init_weights

    hub = get_model_hub(family)
    if device.type == "meta":
        return hub.create_new_model(config, dtype=dtype, meta=True)
    if checkpoint is not None:
        return hub.load_custom_model(checkpoint, config, device=device, dtype=dtype, progress=False)
    if not init_weights:
        with no_init_weights():
            return hub.create_new_model(config, device=device, dtype=dtype)
    torch.manual_seed(seed)
    return hub.create_new_model(config, device=device, dtype=dtype)


def construct(
    model: Annotated[str, typer.Argument(help="An architecture, a card, or a checkpoint dir.")],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Where to write.")],
    device: Annotated[
        str, typer.Option(help="meta (config and code only, no weights), cpu, cuda, ...")
    ] = "meta",
    dtype: Annotated[
        str | None,
        typer.Option(
            help="float32, bfloat16, float16 (default: a checkpoint's stored dtype; new weights "
            "take the source config.json's dtype, else float32)."
        ),
    ] = None,
    init_weights: Annotated[
        bool, typer.Option("--init-weights/--no-init-weights", help="Initialise new weights.")
    ] = True,
    load_from_checkpoint: Annotated[
        Path | None, typer.Option(help="Take the weights from this checkpoint.")
    ] = None,
    save_checkpoint: Annotated[bool, typer.Option(help="Write the weights.")] = False,
    safetensors: Annotated[
        bool, typer.Option("--safetensors/--no-safetensors", help="Weights as safetensors.")
    ] = True,
    max_shard_size: Annotated[str, typer.Option(help="Largest weight file, e.g. 2GB.")] = "5GB",
    refresh: Annotated[
        bool, typer.Option(help="Replace an existing output directory with other contents.")
    ] = False,
    remote_code: Annotated[
        bool, typer.Option(help="Write remote code even where transformers has the family.")
    ] = False,
    tokenizer: Annotated[
        str | None, typer.Option(help="A tokenizer path (or 'byte') to write with the model.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of newly initialised weights.")] = 0,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Set any config field, e.g. --set vocab_size=32000."),
    ] = None,
    **config_flags: Any,
) -> None:
    """Write MODEL as a directory transformers loads: native where transformers has the family,
    else self-contained remote code."""
    from lmhub.checkpoint.writers import parse_size
    from lmhub.data.tokenizers import load_tokenizer
    from lmhub.hf.export import export
    from lmhub.utils import as_device, as_dtype, check_seed

    target = as_device(device)
    check_seed(seed)
    try:
        parse_size(max_shard_size)
    except ValueError as exc:
        raise ConfigError(str(exc), field="max_shard_size", value=max_shard_size) from None
    _check_writable(output_dir)
    source = resolve_model_source(model)
    flags = {flag.name: config_flags.get(flag.param) for flag in CONFIG_FLAGS}
    config = apply_cli_overrides(source.family, source.config, flags, set_)
    if target.type == "meta" and (save_checkpoint or load_from_checkpoint is not None):
        flag = "--save-checkpoint" if save_checkpoint else "--load-from-checkpoint"
        raise ConfigError(
            f"{flag} needs real weights, but --device meta builds the model without any. "
            "Pass --device cpu (or cuda).",
            field="device",
            value=device,
        )
    weights_from = load_from_checkpoint
    if weights_from is None and source.checkpoint is not None and save_checkpoint:
        weights_from = source.checkpoint
    built = build_model(
        source.family,
        config,
        device=target,
        # One meaning of "no --dtype": loads keep the stored dtypes; new weights take the
        # source's declared dtype, else the default.
        dtype=as_dtype(dtype) if weights_from is not None else as_dtype(dtype) or source.dtype,
        init_weights=init_weights,
        checkpoint=weights_from,
        seed=seed,
    )
    tok = load_tokenizer(tokenizer) if tokenizer is not None else _source_tokenizer(source)
    result = export(
        built,
        output_dir,
        remote_code=True if remote_code else None,
        tokenizer=tok,
        family=source.family,
        save_weights=save_checkpoint,
        safetensors=safetensors,
        max_shard_size=max_shard_size,
        overwrite=refresh,
    )
    params = sum(p.numel() for p in built.parameters())
    kind = "native Hugging Face" if result.kind == "native" else "remote-code"
    if not result.changed:
        console.print(f"{result.path} already holds this {kind} export; left it as it was.")
        return
    weights = "with weights" if result.weights else "config and code only, no weights"
    console.print(
        f"Wrote a {kind} directory for '{source.family.name}' ({params / 1e6:.1f}M parameters, "
        f"{weights}) to {result.path}: {len(result.files)} files."
    )


def _check_writable(output_dir: Path) -> None:
    """Refuse an output directory that cannot be created or written, before any work."""
    from lmhub.errors import ExportError

    existing = output_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ExportError(
            f"Cannot write to {output_dir}: {existing} is a file, not a directory. Pass another "
            "--output-dir.",
            path=output_dir,
        )
    try:  # a real probe: permission bits say nothing for root or on read-only mounts
        os.rmdir(tempfile.mkdtemp(prefix=".lmhub-probe-", dir=existing))
    except OSError as exc:
        raise ExportError(
            f"Cannot write to {output_dir}: {existing} is not writable ({exc.strerror}). Pass a "
            "directory you may write to with --output-dir.",
            path=output_dir,
        ) from None


model_app.command()(_with_config_flags(construct))


def register(app: typer.Typer) -> None:
    """Add the ``model`` command group to ``app``."""
    app.add_typer(model_app, name="model")
