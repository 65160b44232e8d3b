"""BERT/RoBERTa <-> Hugging Face: the weight map and the config.json mapping.

transformers keeps BERT and RoBERTa apart (``model_type`` ``bert`` / ``roberta``, names
``bert.*`` + ``cls.predictions.*`` / ``roberta.*`` + ``lm_head.*``) although the layers are the
same, so lmhub holds both in one family and the config's ``flavour`` picks the names:
:data:`BERT_WEIGHT_MAP` imports either spelling and, bound to a config, exports the config's own.
Pre-training extras that a masked-LM model does not use (the pooler, the next-sentence head, the
``position_ids`` buffer older files carry) are skipped on import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from lmhub.checkpoint.weight_map import KeyRule, WeightMap
from lmhub.errors import ConfigError
from lmhub.models.bert.config import BertConfig, BertFlavour
from lmhub.models.gpt2.interop import activation_to_hf, hf_activation
from lmhub.models.hf_dir import json_value


def _rules(prefix: str, head: str, head_norm: str, bias: str, decoder: str) -> list[KeyRule]:
    emb, layer, native = f"{prefix}embeddings", f"{prefix}encoder.layer.{{i}}", "layers.{i}"
    norms = [
        (f"{emb}.LayerNorm", "embed_norm"),
        (f"{layer}.attention.output.LayerNorm", f"{native}.attn_norm"),
        (f"{layer}.output.LayerNorm", f"{native}.ffn_norm"),
        (f"{head}.{head_norm}", "head.norm"),
    ]
    # The LayerNorms are spelled out: TensorFlow-era files (google-bert/bert-base-uncased's)
    # name their parameters gamma/beta, read by the rules at the end; export writes weight/bias,
    # the names of the rules found first.
    modern = [("weight", "weight"), ("bias", "bias")]
    legacy = [("gamma", "weight"), ("beta", "bias")]
    return [
        KeyRule(f"{emb}.word_embeddings.weight", "embed.weight"),
        KeyRule(f"{emb}.position_embeddings.weight", "pos_embed.weight"),
        KeyRule(f"{emb}.token_type_embeddings.weight", "type_embed.weight"),
        *(
            KeyRule(f"{layer}.attention.self.{hf}.{{p}}", f"{native}.attn.{ours}.{{p}}")
            for hf, ours in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj"))
        ),
        KeyRule(f"{layer}.attention.output.dense.{{p}}", f"{native}.attn.o_proj.{{p}}"),
        KeyRule(f"{layer}.intermediate.dense.{{p}}", f"{native}.ffn.fc1.{{p}}"),
        KeyRule(f"{layer}.output.dense.{{p}}", f"{native}.ffn.fc2.{{p}}"),
        KeyRule(f"{head}.dense.{{p}}", "head.dense.{p}"),
        KeyRule(bias, "lm_head.bias"),
        KeyRule(decoder, "lm_head.weight"),
        *(KeyRule(f"{hf}.{a}", f"{ours}.{b}") for hf, ours in norms for a, b in modern),
        *(KeyRule(f"{hf}.{a}", f"{ours}.{b}") for hf, ours in norms for a, b in legacy),
    ]


_TIED: Final = {"lm_head.weight": "embed.weight"}

# flavour -> (prefix, head, the head's LayerNorm, the head's bias, the decoder's weight and bias)
_NAMES: Final[Mapping[BertFlavour, tuple[str, str, str, str, str, str]]] = {
    "bert": (
        "bert.",
        "cls.predictions.transform",
        "LayerNorm",
        "cls.predictions.bias",
        "cls.predictions.decoder.weight",
        "cls.predictions.decoder.bias",
    ),
    "roberta": (
        "roberta.",
        "lm_head",
        "layer_norm",
        "lm_head.bias",
        "lm_head.decoder.weight",
        "lm_head.decoder.bias",
    ),
}


def _flavour_map(flavour: BertFlavour, tied: bool) -> WeightMap:
    """transformers' head has a bias of its own and a decoder ``Linear`` with another; tied, the
    decoder's bias is the head's (files hold it once, older ones twice); untied, only the
    decoder's is used and the head's is a dead parameter, skipped on import and not written."""
    prefix, head, head_norm, bias, decoder, decoder_bias = _NAMES[flavour]
    used, unused = (bias, decoder_bias) if tied else (decoder_bias, bias)
    return WeightMap(
        _rules(prefix, head, head_norm, used, decoder),
        tied=_TIED,
        ignored=[
            f"{prefix}embeddings.position_ids",
            f"{prefix}pooler.dense.{{p}}",
            "cls.seq_relationship.{p}",  # BERT's next-sentence prediction head
            unused,
        ],
    )


def weight_map_key(config: BertConfig) -> str:
    """The name of the config's weight map in :data:`BERT_WEIGHT_MAP`."""
    return config.flavour + ("" if config.tie_embeddings else "-untied")


class FlavouredWeightMap(WeightMap):
    """One weight map per kind of config: unbound, it imports any of them (their rules in
    turn); bound to a config, it is that config's map, so export writes its spelling."""

    def __init__(self, maps: Mapping[str, WeightMap], *, key: Callable[[Any], str]) -> None:
        super().__init__(
            [rule for m in maps.values() for rule in m.rules],
            tied={k: v for m in maps.values() for k, v in m.tied.items()},
            ignored=list(dict.fromkeys(p for m in maps.values() for p in m.ignored)),
        )
        self.maps = dict(maps)
        self.key = key

    def bind(self, config: Any) -> WeightMap:
        if config is None:
            return self
        return self.maps[self.key(config)].bind(config)


BERT_WEIGHT_MAP: Final = FlavouredWeightMap(
    {
        f"{flavour}{'' if tied else '-untied'}": _flavour_map(flavour, tied)
        for tied in (True, False)
        for flavour in _NAMES
    },
    key=weight_map_key,
)

HF_MODEL_TYPES: Final[Mapping[str, BertFlavour]] = {"bert": "bert", "roberta": "roberta"}
HF_ARCHITECTURES: Final[Mapping[BertFlavour, str]] = {
    "bert": "BertForMaskedLM",
    "roberta": "RobertaForMaskedLM",
}

_HF_FIELDS: Final[tuple[tuple[str, str, Any], ...]] = (
    # (HF key, lmhub field, type); absent keys take transformers' BertConfig default, below
    ("hidden_size", "model_dim", int),
    ("num_hidden_layers", "num_layers", int),
    ("num_attention_heads", "num_heads", int),
    ("intermediate_size", "ffn_inner_dim", int),
    ("vocab_size", "vocab_size", int),
    ("max_position_embeddings", "max_seq_len", int),
    ("type_vocab_size", "type_vocab_size", int),
    ("layer_norm_eps", "norm_eps", float),
    ("attention_probs_dropout_prob", "dropout_p", float),
    ("hidden_dropout_prob", "hidden_dropout_p", float),
    ("initializer_range", "init_std", float),
    ("tie_word_embeddings", "tie_embeddings", bool),
    ("pad_token_id", "pad_token_id", int | None),
    ("bos_token_id", "bos_token_id", int | None),
    ("eos_token_id", "eos_token_id", int | list[int] | None),
)

_HF_DEFAULTS: Final[Mapping[str, Any]] = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "vocab_size": 30522,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "attention_probs_dropout_prob": 0.1,
    "hidden_dropout_prob": 0.1,
    "initializer_range": 0.02,
    "tie_word_embeddings": True,
    "pad_token_id": 0,
    "bos_token_id": None,
    "eos_token_id": None,
}
"""transformers' BertConfig defaults (RobertaConfig's differ only in the token ids)."""

_ROBERTA_DEFAULTS: Final[Mapping[str, Any]] = {
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}

# Options of transformers' BERT that lmhub's does not have, with the value it needs.
_HF_REQUIRED: Final[Mapping[str, Any]] = {
    "position_embedding_type": "absolute",
    "is_decoder": False,
    "add_cross_attention": False,
}


def bert_config_from_hf(hf: Mapping[str, Any]) -> BertConfig:
    """Build a :class:`BertConfig` from a Hugging Face BERT or RoBERTa ``config.json`` dict.

    Raises:
        ConfigError: naming the ``config.json`` key (``field``) of an ill-typed or unsupported
            value.
    """
    model_type = json_value(hf.get("model_type", "bert"), str, key="model_type")
    flavour = HF_MODEL_TYPES.get(model_type)
    if flavour is None:
        raise ConfigError(
            f"The key 'model_type' is '{model_type}', but the bert family reads only "
            f"{', '.join(HF_MODEL_TYPES)}.",
            field="model_type",
            value=model_type,
        )
    defaults = {**_HF_DEFAULTS, **(_ROBERTA_DEFAULTS if flavour == "roberta" else {})}
    for key, needed in _HF_REQUIRED.items():
        value = json_value(hf.get(key, needed), type(needed), key=key)
        if value != needed:
            raise ConfigError(
                f"The key '{key}' is {value!r}, which lmhub's BERT does not support. Use a model "
                f"with '{key}' {needed!r}.",
                field=key,
                value=value,
            )
    values = {
        field: json_value(hf.get(key, defaults[key]), tp, key=key) for key, field, tp in _HF_FIELDS
    }
    return BertConfig(
        **values,
        activation=hf_activation(hf, "hidden_act", "gelu"),
        flavour=flavour,
    )


def bert_config_to_hf(config: BertConfig) -> dict[str, Any]:
    """Build a Hugging Face ``config.json`` dict from a :class:`BertConfig`, with the
    ``model_type`` and ``architectures`` of its flavour (BERT or RoBERTa)."""
    return {
        "model_type": config.flavour,
        "architectures": [HF_ARCHITECTURES[config.flavour]],
        **{key: getattr(config, field) for key, field, _ in _HF_FIELDS},
        "hidden_act": activation_to_hf(config.activation),
        **_HF_REQUIRED,
    }
