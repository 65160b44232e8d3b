"""BERT/RoBERTa configuration and the published architecture presets."""

from dataclasses import dataclass
from typing import Final, Literal

from lmhub.errors import ConfigError
from lmhub.models.archs import ArchRegistry
from lmhub.models.validation import check_choice, check_common, check_positive

BERT_FAMILY: Final = "bert"

BertFlavour = Literal["bert", "roberta"]


@dataclass(kw_only=True)
class BertConfig:
    """Holds the shape and options of a BERT encoder (Devlin et al., 2019) or of RoBERTa (Liu et
    al., 2019), which has BERT's layers with other positions and checkpoint names.

    Learned absolute positions plus token-type embeddings, post-LayerNorm layers with biases
    everywhere, a GELU MLP, and a masked-LM head (dense, GELU, LayerNorm, then a vocabulary
    projection with its own bias, tied to the token embeddings).
    """

    model_dim: int = 768
    """The width of the residual stream (HF ``hidden_size``)."""

    num_layers: int = 12
    """The number of encoder layers (HF ``num_hidden_layers``)."""

    num_heads: int = 12
    """The number of attention heads, each ``model_dim // num_heads`` wide."""

    ffn_inner_dim: int = 3072
    """The inner width of the MLP (HF ``intermediate_size``)."""

    vocab_size: int = 30522
    """The number of token embeddings and output logits."""

    max_seq_len: int = 512
    """The number of learned positions (HF ``max_position_embeddings``); RoBERTa's table also
    holds the ``pad_token_id + 1`` positions below its first real one, so 514 means 512 tokens."""

    type_vocab_size: int = 2
    """The number of token types (segments A/B); RoBERTa has one."""

    norm_eps: float = 1e-12
    """The epsilon of the LayerNorms (HF ``layer_norm_eps``)."""

    activation: str = "gelu"
    """The MLP and head activation (an :data:`lmhub.nn.ffn.ACTIVATIONS` name; HF ``hidden_act``)."""

    dropout_p: float = 0.0
    """The dropout probability on attention weights in training (HF
    ``attention_probs_dropout_prob``; the published models trained with 0.1)."""

    hidden_dropout_p: float = 0.0
    """The dropout probability on the embeddings and on each sublayer's output in training (HF
    ``hidden_dropout_prob``; the published models trained with 0.1)."""

    tie_embeddings: bool = True
    """Whether the masked-LM projection shares the token embedding matrix."""

    flavour: BertFlavour = "bert"
    """``bert``: positions count from 0 and the checkpoint names are ``bert.*``/``cls.*`` (HF
    ``model_type`` ``bert``). ``roberta``: positions count real tokens from ``pad_token_id + 1``
    and padding sits at ``pad_token_id`` (fairseq's convention), names are ``roberta.*``/
    ``lm_head.*`` (HF ``model_type`` ``roberta``)."""

    attn_impl: str = "sdpa"
    """The attention kernel: ``sdpa`` (PyTorch fused) or ``eager`` (reference)."""

    init_std: float = 0.02
    """The standard deviation of the normal init of every weight matrix."""

    pad_token_id: int | None = 0
    """The padding token id (``[PAD]``; RoBERTa's ``<pad>`` is 1 and anchors its positions)."""

    bos_token_id: int | None = None
    """The beginning-of-sequence token id, if the vocabulary has one (RoBERTa's ``<s>``)."""

    eos_token_id: int | list[int] | None = None
    """The end-of-sequence token id, if the vocabulary has one (RoBERTa's ``</s>``)."""

    def validate(self) -> None:
        """Raise :class:`~lmhub.errors.ConfigError` if the fields do not describe a valid model."""
        from lmhub.nn.ffn import ACTIVATIONS

        check_common(self)
        check_positive(self, ("type_vocab_size",))
        check_choice(self, "activation", ACTIVATIONS)
        check_choice(self, "flavour", ("bert", "roberta"))
        p = self.hidden_dropout_p
        if not (isinstance(p, int | float) and 0.0 <= p < 1.0):
            raise ConfigError(
                f"'hidden_dropout_p' must be in [0, 1), not {p}.", field="hidden_dropout_p", value=p
            )
        if self.flavour == "roberta":
            pad = self.pad_token_id
            if pad is None or not 0 <= pad < self.max_seq_len - 1:
                raise ConfigError(
                    f"A RoBERTa model counts positions from pad_token_id + 1, so 'pad_token_id' "
                    f"must be set and below max_seq_len - 1 ({self.max_seq_len - 1}), not {pad}.",
                    field="pad_token_id",
                    value=pad,
                )

    def first_position(self) -> int:
        """The position id of the first token (RoBERTa: ``pad_token_id + 1``)."""
        return 0 if self.flavour == "bert" else (self.pad_token_id or 0) + 1


bert_archs: Final = ArchRegistry(BERT_FAMILY, BertConfig)


@bert_archs.register("bert_tiny")
def bert_tiny() -> BertConfig:
    """A ~3.4M-parameter BERT for tests and demos (byte-level vocabulary of 259 tokens)."""
    return BertConfig(
        model_dim=256,
        num_layers=4,
        num_heads=4,
        ffn_inner_dim=1024,
        vocab_size=259,
        max_seq_len=512,
        pad_token_id=258,
    )


@bert_archs.register("bert_base_uncased")
def bert_base_uncased() -> BertConfig:
    """BERT-Base, uncased (110M)."""
    return BertConfig()


@bert_archs.register("bert_large_uncased")
def bert_large_uncased() -> BertConfig:
    """BERT-Large, uncased (340M)."""
    return BertConfig(model_dim=1024, num_layers=24, num_heads=16, ffn_inner_dim=4096)


@bert_archs.register("roberta_base")
def roberta_base() -> BertConfig:
    """RoBERTa-base (125M): BERT-Base's shape, the GPT-2 byte-level BPE vocabulary."""
    return BertConfig(
        vocab_size=50265,
        max_seq_len=514,
        type_vocab_size=1,
        norm_eps=1e-5,
        flavour="roberta",
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )


@bert_archs.register("roberta_large")
def roberta_large() -> BertConfig:
    """RoBERTa-large (355M)."""
    config = roberta_base()
    config.model_dim, config.num_layers, config.num_heads = 1024, 24, 16
    config.ffn_inner_dim = 4096
    return config
