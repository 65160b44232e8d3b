"""Chat templates: the Jinja templates that checkpoints ship to turn a conversation into a prompt.

Templates come from model repositories, so they are untrusted code. They run in Jinja's
immutable sandbox, with the same options and helpers Hugging Face provides (``trim_blocks``,
``lstrip_blocks``, ``raise_exception``, ``strftime_now``, a ``tojson`` that leaves HTML alone),
so a template renders here exactly as it does with ``transformers``.

Example:
    >>> render_chat_template(
    ...     "{% for m in messages %}<{{ m.role }}>{{ m.content }}\\n{% endfor %}",
    ...     [{"role": "user", "content": "Hi"}],
    ... )
    '<user>Hi\\n'
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmhub.errors import TokenizerError

if TYPE_CHECKING:
    import jinja2

__all__ = ["CHAT_TEMPLATE_FILES", "load_chat_template", "render_chat_template"]

#: Files a directory may hold a chat template in, in the order they take priority
#: (a separate template file wins over the copy in tokenizer_config.json, as in transformers).
CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json", "tokenizer_config.json")


def render_chat_template(
    template: str,
    messages: list[dict[str, Any]],
    *,
    add_generation_prompt: bool = True,
    bos_token: str = "",
    eos_token: str = "",
    **extra: Any,
) -> str:
    """Render a chat template for ``messages`` and return the prompt text.

    ``extra`` reaches the template as more variables (``tools``, ``documents``, or anything a
    template reads, e.g. ``enable_thinking``); ``tools`` and ``documents`` are ``None`` unless
    given, as in transformers. The template only ever sees plain data: any value that is not a
    str, number, bool, None, list, tuple or dict arrives as a placeholder such as ``"<Tensor>"``,
    because the methods of richer objects would be callable from the template.

    Raises :class:`~lmhub.errors.TokenizerError` when the template has a syntax error, calls
    ``raise_exception``, breaks a sandbox rule, or fails in any other way.

    Example:
        >>> template = "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}"
        >>> render_chat_template(template, [{"role": "user", "content": "Hi"}], bos_token="<s>")
        '<s>Hi'
    """
    from jinja2.exceptions import SecurityError, TemplateError

    if not isinstance(template, str):
        raise TokenizerError(
            f"A chat template must be a string, not a {type(template).__name__}. Pass the "
            "template text, e.g. from load_chat_template()."
        )
    compiled = _compile(template)
    _check_messages(messages)
    variables = {"tools": None, "documents": None, **extra}
    try:
        return compiled.render(
            messages=_plain(list(messages)),
            add_generation_prompt=bool(add_generation_prompt),
            bos_token=bos_token,
            eos_token=eos_token,
            **{name: _plain(value) for name, value in variables.items()},
        )
    except TokenizerError:
        raise  # from raise_exception: already says what went wrong
    except SecurityError as exc:
        raise TokenizerError(
            f"The chat template tried something the sandbox forbids: {exc}. Chat templates may "
            "read the messages but not change them or reach internals; fix the template."
        ) from exc
    except TemplateError as exc:
        raise TokenizerError(
            f"The chat template failed while rendering: {exc}. Check that the messages have the "
            "fields this template reads (usually 'role' and 'content')."
        ) from exc
    except Exception as exc:  # templates can raise anything (TypeError, KeyError, ...)
        raise TokenizerError(
            f"The chat template failed while rendering ({type(exc).__name__}: {exc}). Check "
            "that the messages have the fields and types this template expects."
        ) from exc


def load_chat_template(path: str | os.PathLike[str]) -> str | None:
    """Read a chat template from a file or a checkpoint directory; ``None`` if it holds none.

    ``path`` may be a ``chat_template.jinja`` (any ``*.jinja``), a ``chat_template.json`` or
    ``tokenizer_config.json`` (any ``*.json`` with a ``"chat_template"`` key, a string or a list
    of ``{"name", "template"}`` entries, of which the ``"default"`` one is used), or a directory
    holding one of those; :data:`CHAT_TEMPLATE_FILES` gives their priority.

    Example:
        >>> load_chat_template("checkpoints/llama-2-7b-chat")  # doctest: +SKIP
        "{% if messages[0]['role'] == 'system' %}..."
    """
    path = Path(path)
    if path.is_dir():
        for name in CHAT_TEMPLATE_FILES:
            if (path / name).is_file() and (template := load_chat_template(path / name)):
                return template
        return None
    if not path.is_file():
        raise TokenizerError(
            f"There is no chat template at {path}: the path does not exist. Pass a "
            f"{', '.join(CHAT_TEMPLATE_FILES)} file, or a directory holding one.",
            path=path,
        )
    if path.suffix == ".jinja":
        return path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return _template_from_json(read_json_object(path), path)
    raise TokenizerError(
        f"{path} is not a chat template file: expected a *.jinja file or a JSON file with a "
        "'chat_template' key, such as tokenizer_config.json.",
        path=path,
    )


def read_json_object(path: Path) -> dict[str, Any]:
    """Read a JSON file that must hold an object; any problem is a :class:`TokenizerError`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TokenizerError(
            f"Could not read the JSON file {path}: {exc}. Check that it is complete, valid JSON.",
            path=path,
        ) from exc
    if not isinstance(data, dict):
        raise TokenizerError(
            f"{path} holds a JSON {type(data).__name__}, not an object. Check that it is the "
            "right file.",
            path=path,
        )
    return data


def _template_from_json(data: dict[str, Any], path: Path) -> str | None:
    value = data.get("chat_template")
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        named = {
            entry.get("name"): entry.get("template") for entry in value if isinstance(entry, dict)
        }
        if isinstance(named.get("default"), str):
            return named["default"]
        raise TokenizerError(
            f"{path} has named chat templates ({', '.join(map(str, named))}) but none called "
            "'default'. Pick one and save it as chat_template.jinja beside the tokenizer.",
            path=path,
        )
    raise TokenizerError(
        f"The 'chat_template' in {path} is a {type(value).__name__}; it must be a string or a "
        "list of {'name': ..., 'template': ...} entries. Fix the file.",
        path=path,
    )


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, (list, tuple)):
        raise TokenizerError(
            f"Chat messages must be a list of dicts, not a {type(messages).__name__}. Pass e.g. "
            "[{'role': 'user', 'content': 'Hello'}]."
        )
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise TokenizerError(
                f"Chat message {index} is a {type(message).__name__}, not a dict. Every message "
                "must be a dict such as {'role': 'user', 'content': 'Hello'}."
            )


def _plain(value: Any) -> Any:
    """Copy ``value`` as plain JSON-like data; anything else becomes ``"<TypeName>"``."""
    # Exact types only: subclasses (enums, numpy scalars, str subclasses) can carry methods that
    # the sandbox does not know to block.
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, Mapping):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    for base in (str, bool, int, float):
        if isinstance(value, base):
            return base(value)
    return f"<{type(value).__name__}>"


def _raise_exception(message: str) -> None:
    raise TokenizerError(
        f"The chat template rejected the messages: {message} Change the messages to fit what "
        "this template expects."
    )


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | str | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # Jinja's own tojson escapes <, >, & and ' for HTML, which would change the prompt text.
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class ChatTemplateEnvironment(ImmutableSandboxedEnvironment):
        def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
            # Jinja's sandbox turns `''.__class__` into an undefined value that prints as "";
            # failing loudly tells the user their template is doing something it must not.
            raise SecurityError(
                f"access to the attribute {attribute!r} of a {type(obj).__name__} is not allowed"
            )

    env = ChatTemplateEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


@functools.lru_cache(maxsize=64)
def _compile(template: str) -> jinja2.Template:
    # Cached: a tokenizer renders the same template for every request.
    from jinja2.exceptions import TemplateSyntaxError

    try:
        return _environment().from_string(template)
    except TemplateSyntaxError as exc:
        raise TokenizerError(
            f"The chat template has a Jinja syntax error on line {exc.lineno}: {exc.message}. "
            "Fix the template text."
        ) from exc
