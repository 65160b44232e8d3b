"""The encoder-decoder Transformer, top to bottom.

encoder: embed x sqrt(d) + sinusoids -> N x (self-attention, ReLU MLP) [-> LN if pre-norm]
decoder: embed x sqrt(d) + sinusoids -> N x (causal self-attention, cross-attention, ReLU MLP)
         [-> LN if pre-norm] -> logits (tied to the decoder embeddings)

Post-norm layers (the paper, fairseq2's ``base``/``big``) norm after each residual add, so the
stacks end normed; pre-norm ones (NLLB) need the final LayerNorm.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lmhub.models.encoder_decoder import EncoderDecoderLM, memory_mask_of
from lmhub.models.transformer.config import TransformerConfig
from lmhub.nn.attention import Attention
from lmhub.nn.cross_attention import CrossAttention
from lmhub.nn.encdec_layer import EncoderDecoderLayer
from lmhub.nn.ffn import MLPFeedForward
from lmhub.nn.kv_cache import KVCache
from lmhub.nn.masks import build_attention_mask
from lmhub.nn.positions import default_positions
from lmhub.nn.sinusoids import half_split_sinusoids


class TransformerStack(nn.Module):
    """The encoder (``causal=False``) or the decoder (``causal=True``, with cross-attention)."""

    def __init__(self, config: TransformerConfig, *, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.pos_offset = config.pos_offset
        self.embed_scale = math.sqrt(config.model_dim) if config.scale_embeddings else 1.0
        self.dropout_p = config.dropout_p
        d = config.model_dim
        heads = config.num_decoder_heads if causal else config.num_heads
        num_layers = config.num_decoder_layers if causal else config.num_layers

        def attention(cls: type[Attention], i: int) -> Attention:
            return cls(
                d,
                num_heads=heads,
                num_kv_heads=heads,
                head_dim=d // heads,
                bias=True,
                dropout_p=config.dropout_p,
                attn_impl=config.attn_impl,
                layer_idx=i,
            )

        def norm() -> nn.LayerNorm:
            return nn.LayerNorm(d, eps=config.norm_eps)

        self.layers = nn.ModuleList(
            EncoderDecoderLayer(
                self_attn=attention(Attention, i),
                self_attn_norm=norm(),
                cross_attn=attention(CrossAttention, i) if causal else None,  # type: ignore[arg-type]
                cross_attn_norm=norm() if causal else None,
                ffn=MLPFeedForward(d, config.ffn_inner_dim, activation=config.activation),
                ffn_norm=norm(),
                norm_order=config.norm_order,  # type: ignore[arg-type]
                dropout_p=config.dropout_p,
            )
            for i in range(num_layers)
        )
        # None is a plain attribute, so post-norm stacks have no final-norm keys.
        self.final_norm = norm() if config.norm_order == "pre" else None

    def forward(
        self,
        embeds: torch.Tensor,
        ids: torch.Tensor,
        *,
        padding_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        s = ids.shape[1]
        past = cache.seq_len if cache is not None else 0
        positions = default_positions(ids, padding_mask, past) + self.pos_offset
        pos = half_split_sinusoids(positions, embeds.shape[-1]).to(embeds.dtype)
        x = F.dropout(embeds * self.embed_scale + pos, p=self.dropout_p, training=self.training)
        mask = build_attention_mask(
            q_len=s, kv_len=past + s, padding_mask=padding_mask, causal=self.causal
        )
        cross_mask = memory_mask_of(memory_mask)
        for layer in self.layers:
            x = layer(
                x,
                mask=mask,
                is_causal=self.causal and mask is None,
                cache=cache,
                memory=memory,
                memory_mask=cross_mask,
            )
        if cache is not None:
            cache.advance(s)
        return x if self.final_norm is None else self.final_norm(x)


class TransformerModel(EncoderDecoderLM):
    """An encoder-decoder Transformer (fairseq2's ``transformer`` family; NLLB's dense models).

    Example:
        >>> model = TransformerModel(transformer_archs.get("transformer_tiny"))
        >>> model(torch.tensor([[1, 2, 3]]), decoder_input_ids=torch.tensor([[257, 5]])).shape
        torch.Size([1, 2, 259])
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        d = config.model_dim
        self.embed = nn.Embedding(config.vocab_size, d)
        # None is a plain attribute: a shared table has no separate source keys.
        self.encoder_embed = (
            None
            if config.share_embeddings
            else nn.Embedding(config.resolved_source_vocab_size(), d)
        )
        self.encoder = TransformerStack(config, causal=False)
        self.decoder = TransformerStack(config, causal=True)
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        self.finish_init()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """fairseq's init: Xavier-uniform linears with zero biases, normal(0, ``model_dim **
        -0.5``) embeddings with a zero padding row, unit LayerNorms."""
        pad = self.config.pad_token_id
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=self.config.model_dim**-0.5)
                if pad is not None and pad < module.num_embeddings:
                    module.weight[pad].zero_()
            elif isinstance(module, nn.LayerNorm):
                module.reset_parameters()

    def encode(
        self, input_ids: torch.Tensor, *, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        embed = self.embed if self.encoder_embed is None else self.encoder_embed
        return self.encoder(embed(input_ids), input_ids, padding_mask=attention_mask)

    def decode(
        self,
        decoder_input_ids: torch.Tensor,
        memory: torch.Tensor,
        *,
        memory_mask: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        return_hidden: bool = False,
    ) -> torch.Tensor:
        x = self.decoder(
            self.embed(decoder_input_ids),
            decoder_input_ids,
            padding_mask=decoder_attention_mask,
            cache=cache,
            memory=memory,
            memory_mask=memory_mask,
        )
        return x if return_hidden else self.logits(x)
