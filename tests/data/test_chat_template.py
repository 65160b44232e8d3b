"""Tests for lmhub.data.chat_template.

Rendering is compared with transformers' ``apply_chat_template(tokenize=False)`` on the same
templates. The reference tokenizers are built from the real GPT-2 files in tests/fixtures (see its
README.md) and from the Llama-style SentencePiece model the ``sp_model_file`` fixture trains.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from lmhub.data.chat_template import load_chat_template, render_chat_template
from lmhub.data.tokenizers import ByteTokenizer, SentencePieceTokenizer
from lmhub.errors import TokenizerError
from tests.fixtures import GPT2_MERGES, GPT2_VOCAB

# Written for these tests in the style of the ChatML and Llama 2 chat templates on the Hub.
CHATML = """{% for message in messages %}
<|im_start|>{{ message['role'] }}
{{ message['content'] }}<|im_end|>
{% endfor %}
{% if add_generation_prompt %}
<|im_start|>assistant
{% endif %}"""

LLAMA2 = """{%- if messages[0]['role'] == 'system' -%}
    {%- set system = messages[0]['content'] -%}
    {%- set turns = messages[1:] -%}
{%- else -%}
    {%- set system = none -%}
    {%- set turns = messages -%}
{%- endif -%}
{%- for message in turns -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception('Roles must alternate user, assistant, user, ...') }}
    {%- endif -%}
    {%- if message['role'] == 'user' -%}
        {%- set content = message['content'] -%}
        {%- if loop.first and system is not none -%}
            {%- set content = '<<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' + content -%}
        {%- endif -%}
        {{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}
    {%- else -%}
        {{ ' ' + message['content'].strip() + ' ' + eos_token }}
    {%- endif -%}
{%- endfor -%}"""

TOOLS = """{% if tools %}
Tools:
{% for tool in tools %}
{{ tool | tojson(indent=2) }}
{% endfor %}
{% endif %}
{% for message in messages %}
    {{ message.role }}: {{ message.content }}
{% endfor %}"""

CONVERSATIONS: list[list[dict[str, Any]]] = [
    [{"role": "user", "content": "Hello!"}],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": " What is 2+2? "},
        {"role": "assistant", "content": "4."},
        {"role": "user", "content": "And 3+3 — in 日本語? 😀"},
    ],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello, how can I help?"},
    ],
]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a <city> & country",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def hf_gpt2() -> Any:
    from transformers import GPT2TokenizerFast

    vocab = json.loads(GPT2_VOCAB.read_text(encoding="utf-8"))
    lines = GPT2_MERGES.read_text(encoding="utf-8").split("\n")
    return GPT2TokenizerFast(vocab=vocab, merges=[tuple(x.split(" ")) for x in lines if x])


@pytest.fixture(scope="module")
def hf_llama(sp_model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from transformers import LlamaTokenizer

    source = tmp_path_factory.mktemp("llama")
    shutil.copy(sp_model_file, source / "tokenizer.model")
    return LlamaTokenizer.from_pretrained(source)


# --- same text as transformers -------------------------------------------------------------------


@pytest.mark.parametrize("add_generation_prompt", [True, False])
@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_chatml_matches_transformers(
    hf_gpt2: Any, messages: list[dict[str, Any]], add_generation_prompt: bool
) -> None:
    expected = hf_gpt2.apply_chat_template(
        messages, chat_template=CHATML, tokenize=False, add_generation_prompt=add_generation_prompt
    )
    ours = render_chat_template(
        CHATML,
        messages,
        add_generation_prompt=add_generation_prompt,
        bos_token=hf_gpt2.bos_token,
        eos_token=hf_gpt2.eos_token,
    )
    assert ours == expected
    assert ours.startswith("<|im_start|>")  # trim_blocks and lstrip_blocks are on


@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_llama2_template_matches_transformers(
    hf_llama: Any, sp_model_file: Path, messages: list[dict[str, Any]]
) -> None:
    expected = hf_llama.apply_chat_template(messages, chat_template=LLAMA2, tokenize=False)
    tok = SentencePieceTokenizer(sp_model_file, chat_template=LLAMA2)
    assert tok.apply_chat_template(messages, add_generation_prompt=False) == expected
    assert expected.startswith("<s>[INST] ")


def test_tools_and_tojson_match_transformers(hf_gpt2: Any) -> None:
    messages = CONVERSATIONS[0]
    expected = hf_gpt2.apply_chat_template(
        messages, tools=[WEATHER_TOOL], chat_template=TOOLS, tokenize=False
    )
    ours = render_chat_template(TOOLS, messages, tools=[WEATHER_TOOL])
    assert ours == expected
    assert '"description": "Weather for a <city> & country"' in ours  # no HTML escaping
    without_tools = render_chat_template(TOOLS, messages)
    assert without_tools == hf_gpt2.apply_chat_template(
        messages, chat_template=TOOLS, tokenize=False
    )
    assert "Tools:" not in without_tools


# --- helpers available to templates --------------------------------------------------------------


def test_tojson_keeps_text_as_is() -> None:
    rendered = render_chat_template("{{ x | tojson }}", [], x={"a": "<b> & 'é' 😀"})
    assert rendered == '{"a": "<b> & \'é\' 😀"}'
    assert render_chat_template("{{ x | tojson(sort_keys=true) }}", [], x={"b": 1, "a": 2}) == (
        '{"a": 2, "b": 1}'
    )


def test_strftime_now() -> None:
    before = datetime.now().strftime("%Y-%m-%d")
    rendered = render_chat_template("{{ strftime_now('%Y-%m-%d') }}", [])
    assert rendered in (before, datetime.now().strftime("%Y-%m-%d"))


def test_raise_exception_becomes_a_tokenizer_error() -> None:
    messages = [{"role": "assistant", "content": "I speak first"}]
    with pytest.raises(TokenizerError, match="rejected the messages: Roles must alternate"):
        render_chat_template(LLAMA2, messages)


def test_loop_controls_and_defaults() -> None:
    template = (
        "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m }}{% endfor %}"
    )
    assert render_chat_template(template, [{"a": 1}, {"b": 2}]) == "{'a': 1}"
    assert render_chat_template("{{ tools is none }} {{ documents is none }}", []) == "True True"
    assert render_chat_template("{{ add_generation_prompt }}", []) == "True"


def test_templates_see_only_plain_data() -> None:
    class Rich:
        def delete_everything(self) -> None:
            raise AssertionError("templates must not reach methods of caller objects")

    messages = [{"role": "user", "content": Rich(), "n": (1, 2.5, None)}]
    rendered = render_chat_template("{{ messages[0].content }} {{ messages[0].n }}", messages)
    assert rendered == "<Rich> (1, 2.5, None)"


# --- sandbox and errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ messages.append(1) }}",
        "{{ messages[0].update({'role': 'x'}) }}",
    ],
)
def test_sandbox_blocks_internals_and_mutation(template: str) -> None:
    with pytest.raises(TokenizerError, match="chat template"):
        render_chat_template(template, [{"role": "user", "content": "hi"}])


def test_syntax_error_names_the_line() -> None:
    with pytest.raises(TokenizerError, match="syntax error on line 2"):
        render_chat_template("ok\n{% for m in messages %}", [])


@pytest.mark.parametrize("messages", ["hello", [["user", "hi"]]])
def test_messages_must_be_a_list_of_dicts(messages: Any) -> None:
    with pytest.raises(TokenizerError, match="dict"):
        render_chat_template(CHATML, messages)


def test_missing_fields_are_tokenizer_errors() -> None:
    with pytest.raises(TokenizerError, match="failed while rendering"):
        render_chat_template("{{ messages[0]['content'].strip() }}", [{"role": "user"}])


def test_apply_chat_template_passes_special_tokens_and_kwargs() -> None:
    tok = ByteTokenizer(chat_template="{{ bos_token }}|{{ eos_token }}|{{ pad_token }}|{{ x }}")
    assert tok.apply_chat_template([], x=1) == "<|bos|>|<|eos|>|<|pad|>|1"
    assert tok.apply_chat_template([], bos_token="B") == "B|<|eos|>|<|pad|>|"


# --- load_chat_template --------------------------------------------------------------------------


def test_load_from_tokenizer_config(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"bos_token": "<s>", "chat_template": LLAMA2})
    )
    assert load_chat_template(tmp_path / "tokenizer_config.json") == LLAMA2
    assert load_chat_template(tmp_path) == LLAMA2


def test_load_named_templates_picks_default(tmp_path: Path) -> None:
    config = tmp_path / "tokenizer_config.json"
    named = [{"name": "tool_use", "template": TOOLS}, {"name": "default", "template": CHATML}]
    config.write_text(json.dumps({"chat_template": named}))
    assert load_chat_template(config) == CHATML
    config.write_text(json.dumps({"chat_template": named[:1]}))
    with pytest.raises(TokenizerError, match="none called 'default'"):
        load_chat_template(config)


def test_load_priority_in_a_directory(tmp_path: Path) -> None:
    assert load_chat_template(tmp_path) is None
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    assert load_chat_template(tmp_path) is None
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": LLAMA2}))
    (tmp_path / "chat_template.json").write_text(json.dumps({"chat_template": TOOLS}))
    assert load_chat_template(tmp_path) == TOOLS
    (tmp_path / "chat_template.jinja").write_text(CHATML)
    assert load_chat_template(tmp_path) == CHATML
    assert load_chat_template(tmp_path / "chat_template.jinja") == CHATML


def test_load_transformers_saved_template(hf_gpt2: Any, tmp_path: Path) -> None:
    hf_gpt2.chat_template = CHATML
    try:
        hf_gpt2.save_pretrained(tmp_path)
    finally:
        hf_gpt2.chat_template = None
    assert load_chat_template(tmp_path) == CHATML


@pytest.mark.parametrize("kind", ["missing", "bad_json", "not_a_template", "wrong_type"])
def test_load_errors(tmp_path: Path, kind: str) -> None:
    path = {
        "missing": tmp_path / "nope.jinja",
        "bad_json": tmp_path / "tokenizer_config.json",
        "not_a_template": tmp_path / "template.txt",
        "wrong_type": tmp_path / "chat_template.json",
    }[kind]
    if kind == "bad_json":
        path.write_text('{"chat_template": ')
    elif kind == "wrong_type":
        path.write_text('{"chat_template": 3}')
    elif kind == "not_a_template":
        path.write_text("hi")
    with pytest.raises(TokenizerError) as info:
        load_chat_template(path)
    assert str(path) in str(info.value)
