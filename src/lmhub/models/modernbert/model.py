"""The ModernBERT encoder, top to bottom: embed -> LayerNorm -> N x pre-LN (RoPE attention,
global or within a local window; GeGLU MLP) -> LayerNorm -> masked-LM head (dense, GELU,
LayerNorm, vocabulary projection tied to the embedding)."""

from __future__ import annotations

import math

import torch
from torch import nn

from lmhub.data.packing import document_mask
from lmhub.models.encoder import EncoderLM
from lmhub.models.modernbert.config import ModernBertConfig
from lmhub.nn.attention import Attention
from lmhub.nn.encoder import MaskedLMHeadTransform
from lmhub.nn.ffn import GLUFeedForward
from lmhub.nn.masks import build_attention_mask
from lmhub.nn.rope import RotaryEmbedding
from lmhub.nn.transformer import PreNormDecoderLayer


class ModernBertModel(EncoderLM):
    """A ModernBERT masked language model.

    Example:
        >>> model = ModernBertModel(modernbert_archs.get("modernbert_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        d, eps, head_dim = config.model_dim, config.norm_eps, config.model_dim // config.num_heads

        def norm() -> nn.LayerNorm:
            return nn.LayerNorm(d, eps=eps, bias=config.norm_bias)

        self.embed = nn.Embedding(config.vocab_size, d)
        self.embed_norm = norm()
        self.layers = nn.ModuleList(
            PreNormDecoderLayer(
                # The first layer reads the normed embeddings as they are.
                attn_norm=norm() if i > 0 else None,
                attn=Attention(
                    d,
                    num_heads=config.num_heads,
                    num_kv_heads=config.num_heads,
                    head_dim=head_dim,
                    bias=config.attn_bias,
                    dropout_p=config.dropout_p,
                    attn_impl=config.attn_impl,
                    layer_idx=i,
                    sliding_window=None if config.is_global(i) else config.local_attention,
                ),
                ffn_norm=norm(),
                ffn=GLUFeedForward(
                    d, config.ffn_inner_dim, activation=config.activation, bias=config.ffn_bias
                ),
            )
            for i in range(config.num_layers)
        )
        self.final_norm = norm()
        self.global_rope = RotaryEmbedding(
            head_dim, theta=config.global_rope_theta, max_seq_len=config.max_seq_len
        )
        self.local_rope = RotaryEmbedding(
            head_dim, theta=config.local_rope_theta, max_seq_len=config.max_seq_len
        )
        self.head = MaskedLMHeadTransform(
            d,
            activation=config.head_activation,
            eps=eps,
            bias=config.head_bias,
            norm_bias=config.norm_bias,
        )
        self.lm_head = nn.Linear(d, config.vocab_size, bias=config.decoder_bias)
        self.finish_init()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """ModernBERT's init: truncated-normal weights (``init_std``; ``init_std / sqrt(2 *
        num_layers)`` for the projections that write the residual and for the head), zero
        biases, unit LayerNorms."""
        config = self.config
        std_in = config.init_std
        std_out = config.init_std / math.sqrt(2.0 * config.num_layers)

        def init(module: nn.Linear | nn.Embedding, std: float) -> None:
            cut = config.init_cutoff_factor * std
            nn.init.trunc_normal_(module.weight, mean=0.0, std=std, a=-cut, b=cut)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

        for module in self.modules():
            if isinstance(module, nn.LayerNorm):
                module.reset_parameters()
        init(self.embed, std_in)
        for layer in self.layers:
            attn, ffn = layer.attn, layer.ffn
            for proj in (attn.q_proj, attn.k_proj, attn.v_proj, ffn.gate_proj, ffn.up_proj):
                init(proj, std_in)
            init(attn.o_proj, std_out)
            init(ffn.down_proj, std_out)
        init(self.head.dense, std_out)
        if not self.config.tie_embeddings:
            init(self.lm_head, std_out)
        elif self.lm_head.bias is not None:
            nn.init.zeros_(self.lm_head.bias)

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
            attention_mask: ``[batch, seq]``, 1 for real tokens and 0 for padding. With
                ``config.unpadded``, a padded batch runs on its real tokens only, and the
                padding positions of the result are zeros.
            token_type_ids: not used (ModernBERT has no segments); accepted for the common
                encoder calling convention, and must be ``None`` or all zeros.
            position_ids: ``[batch, seq]``; defaults to ``0, 1, ...``.
            return_hidden: return the final normed hidden states instead of logits.
            causal: ``True`` restricts each position to itself and earlier ones (a decoder's
                mask over the encoder's layers); encoders are bidirectional by default.
        """
        if token_type_ids is not None and bool(token_type_ids.any()):
            raise ValueError(
                "ModernBERT has no token types, but token_type_ids holds non-zero ids. "
                "Leave token_type_ids out."
            )
        b, s = input_ids.shape
        device = input_ids.device
        if position_ids is None:
            position_ids = torch.arange(s, device=device).expand(b, s)
        # A token sees keys at most local_attention // 2 positions away: fewer than this many.
        window = self.config.local_attention // 2 + 1
        padded = attention_mask is not None and not bool(attention_mask.all())
        if padded and self.config.unpadded:
            assert attention_mask is not None
            # Only the real tokens, packed into one row; each attends within its own sequence
            # (and, in local layers, within the window of its original column).
            real = attention_mask.bool().flatten().nonzero().squeeze(1)
            columns = torch.arange(s, device=device).repeat(b)[real]
            sequences = torch.arange(b, device=device).repeat_interleave(s)[real]
            ids, position_ids = input_ids.flatten()[real][None], position_ids.flatten()[real][None]
            full = document_mask(sequences[None], causal=causal)
            near = (columns[:, None] - columns[None, :]).abs() < window
            masks = {True: full, False: full & near}
        else:
            ids = input_ids
            masks = {
                is_global: build_attention_mask(
                    q_len=s,
                    kv_len=s,
                    padding_mask=attention_mask,
                    causal=causal,
                    sliding_window=None if is_global else window,
                    device=device,
                )
                for is_global in (True, False)
            }
        x = self.embed_norm(self.embed(ids))
        ropes = {
            True: self.global_rope(position_ids, x.dtype),
            False: self.local_rope(position_ids, x.dtype),
        }
        for i, layer in enumerate(self.layers):
            is_global = self.config.is_global(i)
            mask = masks[is_global]
            x = layer(x, rope=ropes[is_global], mask=mask, is_causal=causal and mask is None)
        x = self.final_norm(x)
        out = x if return_hidden else self.logits(x)
        if padded and self.config.unpadded:
            # Back to [batch, seq, ...]: padding positions get zeros (they are padding's).
            repadded = out.new_zeros(b * s, out.shape[-1])
            repadded[real] = out[0]
            return repadded.view(b, s, -1)
        return out
