"""The T5 encoder-decoder, top to bottom.

encoder: embed -> N x pre-norm (self-attention + relative bias, feed-forward) -> RMS norm
decoder: embed -> N x pre-norm (causal self-attention + relative bias, cross-attention,
         feed-forward) -> RMS norm -> (x model_dim^-0.5 if scale_logits) -> logits

Scores are not scaled by ``head_dim ** -0.5`` (T5 folds that into its init); each stack's first
layer owns the relative position bias, which every layer of that stack adds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lmhub.models.encoder_decoder import EncoderDecoderLM, memory_mask_of
from lmhub.models.t5.config import T5Config
from lmhub.nn.attention import Attention
from lmhub.nn.cross_attention import CrossAttention
from lmhub.nn.encdec_layer import EncoderDecoderLayer
from lmhub.nn.ffn import GLUFeedForward
from lmhub.nn.kv_cache import KVCache
from lmhub.nn.masks import build_attention_mask
from lmhub.nn.norm import RMSNorm
from lmhub.nn.relative_position import RelativePositionBias


class T5Stack(nn.Module):
    """The encoder (``causal=False``) or the decoder (``causal=True``, with cross-attention)."""

    def __init__(self, config: T5Config, *, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        d, heads, head_dim = config.model_dim, config.num_heads, config.resolved_head_dim()
        num_layers = config.num_decoder_layers if causal else config.num_layers

        def attention(cls: type[Attention], i: int) -> Attention:
            return cls(
                d,
                num_heads=heads,
                num_kv_heads=heads,
                head_dim=head_dim,
                dropout_p=config.dropout_p,
                attn_impl=config.attn_impl,
                layer_idx=i,
                scale=1.0,
            )

        def ffn() -> nn.Module:
            return GLUFeedForward(d, config.ffn_inner_dim, activation=config.activation)

        def norm() -> RMSNorm:
            return RMSNorm(d, eps=config.norm_eps)

        self.rel_bias = RelativePositionBias(
            config.num_buckets, heads, bidirectional=not causal, max_distance=config.max_distance
        )
        self.layers = nn.ModuleList(
            EncoderDecoderLayer(
                self_attn=attention(Attention, i),
                self_attn_norm=norm(),
                cross_attn=attention(CrossAttention, i) if causal else None,  # type: ignore[arg-type]
                cross_attn_norm=norm() if causal else None,
                ffn=ffn(),
                ffn_norm=norm(),
                norm_order="pre",
                dropout_p=config.dropout_p,
            )
            for i in range(num_layers)
        )
        self.final_norm = norm()
        self.dropout_p = config.dropout_p

    def forward(
        self,
        x: torch.Tensor,
        *,
        padding_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        s = x.shape[1]
        past = cache.seq_len if cache is not None else 0
        bias = self.rel_bias(q_len=s, kv_len=past + s).to(x.dtype)
        mask = build_attention_mask(
            q_len=s, kv_len=past + s, padding_mask=padding_mask, causal=self.causal
        )
        cross_mask = memory_mask_of(memory_mask)
        x = F.dropout(x, p=self.dropout_p, training=self.training)
        for layer in self.layers:
            x = layer(
                x,
                mask=mask,
                is_causal=self.causal and mask is None,
                bias=bias,
                cache=cache,
                memory=memory,
                memory_mask=cross_mask,
            )
        if cache is not None:
            cache.advance(s)
        return F.dropout(self.final_norm(x), p=self.dropout_p, training=self.training)


class T5Model(EncoderDecoderLM):
    """A T5 encoder-decoder language model.

    Example:
        >>> model = T5Model(t5_archs.get("t5_tiny"))
        >>> model(torch.tensor([[1, 2, 3]]), decoder_input_ids=torch.tensor([[258, 5]])).shape
        torch.Size([1, 2, 259])
    """

    def __init__(self, config: T5Config) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.model_dim)
        self.encoder = T5Stack(config, causal=False)
        self.decoder = T5Stack(config, causal=True)
        self.lm_head = nn.Linear(config.model_dim, config.vocab_size, bias=False)
        self.finish_init()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """T5's init (Mesh TensorFlow): normal weights scaled by each matrix's fan-in, the
        queries also by ``head_dim ** -0.5`` (the score scale T5 leaves out), unit norms."""
        c = self.config
        f, d, hd = c.init_factor, c.model_dim, c.resolved_head_dim()
        nn.init.normal_(self.embed.weight, std=f)
        if not c.tie_embeddings:
            nn.init.normal_(self.lm_head.weight, std=f * d**-0.5)
        for stack in (self.encoder, self.decoder):
            nn.init.normal_(stack.rel_bias.weight, std=f * d**-0.5)
            stack.final_norm.reset_parameters()
            for layer in stack.layers:
                for attn in (layer.self_attn, layer.cross_attn):
                    if attn is None:
                        continue
                    nn.init.normal_(attn.q_proj.weight, std=f * (d * hd) ** -0.5)
                    for proj in (attn.k_proj, attn.v_proj):
                        nn.init.normal_(proj.weight, std=f * d**-0.5)
                    nn.init.normal_(attn.o_proj.weight, std=f * (c.num_heads * hd) ** -0.5)
                for name, module in layer.ffn.named_children():
                    fan_in = c.ffn_inner_dim if name == "down_proj" else d
                    nn.init.normal_(module.weight, std=f * fan_in**-0.5)
                for norm in (layer.self_attn_norm, layer.cross_attn_norm, layer.ffn_norm):
                    if norm is not None:
                        norm.reset_parameters()

    def encode(
        self, input_ids: torch.Tensor, *, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.encoder(self.embed(input_ids), padding_mask=attention_mask)

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
            padding_mask=decoder_attention_mask,
            cache=cache,
            memory=memory,
            memory_mask=memory_mask,
        )
        return x if return_hidden else self.logits(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The output projection, after the ``model_dim ** -0.5`` scale where configured."""
        if self.config.scale_logits:
            hidden = hidden * self.config.model_dim**-0.5
        return self.lm_head(hidden)
