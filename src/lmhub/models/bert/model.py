"""The BERT/RoBERTa encoder, top to bottom: token + position + token-type embeddings ->
LayerNorm -> N x post-LN (attention, GELU MLP) -> masked-LM head (dense, GELU, LayerNorm,
vocabulary projection tied to the embedding)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lmhub.models.bert.config import BertConfig
from lmhub.models.encoder import EncoderLM
from lmhub.nn.attention import Attention
from lmhub.nn.encoder import MaskedLMHeadTransform
from lmhub.nn.ffn import MLPFeedForward
from lmhub.nn.masks import build_attention_mask
from lmhub.nn.positions import LearnedPositionEmbedding
from lmhub.nn.transformer import PostNormDecoderLayer


def roberta_positions(input_ids: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """RoBERTa's position ids: real tokens count from ``pad_token_id + 1``, padding (tokens equal
    to ``pad_token_id``) sits at ``pad_token_id``, as fairseq and transformers compute them.

    Example:
        >>> roberta_positions(torch.tensor([[0, 5, 2, 1, 1]]), pad_token_id=1)
        tensor([[2, 3, 4, 1, 1]])
    """
    real = input_ids.ne(pad_token_id).long()
    return real.cumsum(-1) * real + pad_token_id


class BertModel(EncoderLM):
    """A BERT (or RoBERTa) masked language model.

    Example:
        >>> model = BertModel(bert_archs.get("bert_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        d, eps = config.model_dim, config.norm_eps
        self.embed = nn.Embedding(config.vocab_size, d)
        self.pos_embed = LearnedPositionEmbedding(config.max_seq_len, d)
        self.type_embed = nn.Embedding(config.type_vocab_size, d)
        self.embed_norm = nn.LayerNorm(d, eps=eps)
        self.layers = nn.ModuleList(
            PostNormDecoderLayer(
                attn=Attention(
                    d,
                    num_heads=config.num_heads,
                    num_kv_heads=config.num_heads,
                    head_dim=d // config.num_heads,
                    bias=True,
                    dropout_p=config.dropout_p,
                    attn_impl=config.attn_impl,
                    layer_idx=i,
                ),
                attn_norm=nn.LayerNorm(d, eps=eps),
                ffn=MLPFeedForward(d, config.ffn_inner_dim, activation=config.activation),
                ffn_norm=nn.LayerNorm(d, eps=eps),
                dropout_p=config.hidden_dropout_p,
            )
            for i in range(config.num_layers)
        )
        self.head = MaskedLMHeadTransform(d, activation=config.activation, eps=eps)
        self.lm_head = nn.Linear(d, config.vocab_size, bias=True)
        self.finish_init()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """BERT's init: normal(0, init_std) weights, zero biases, unit LayerNorms."""
        self.normal_init_(self.config.init_std, reset=(nn.LayerNorm,))

    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        return_hidden: bool = False,
        causal: bool = False,
    ) -> torch.Tensor:
        """Return masked-LM logits ``[batch, seq, vocab]`` for token ids ``[batch, seq]``.

        Args:
            attention_mask: ``[batch, seq]``, 1 for real tokens and 0 for padding.
            token_type_ids: ``[batch, seq]`` segment ids; zeros by default.
            position_ids: ``[batch, seq]``; defaults to ``0, 1, ...`` (BERT) or to
                :func:`roberta_positions` (RoBERTa).
            return_hidden: return the final hidden states instead of logits.
            causal: ``True`` restricts each position to itself and earlier ones (a decoder's
                mask over the encoder's layers); encoders are bidirectional by default.
        """
        config = self.config
        if position_ids is None:
            if config.flavour == "roberta":
                position_ids = roberta_positions(input_ids, config.pad_token_id)
            else:
                s = input_ids.shape[1]
                position_ids = torch.arange(s, device=input_ids.device).expand_as(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embed(input_ids) + self.type_embed(token_type_ids) + self.pos_embed(position_ids)
        x = F.dropout(self.embed_norm(x), p=config.hidden_dropout_p, training=self.training)
        s = input_ids.shape[1]
        mask = build_attention_mask(
            q_len=s, kv_len=s, padding_mask=attention_mask, causal=causal, device=x.device
        )
        for layer in self.layers:
            x = layer(x, mask=mask, is_causal=causal and mask is None)
        return x if return_hidden else self.logits(x)
