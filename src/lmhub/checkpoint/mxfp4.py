"""MXFP4 (OCP microscaling FP4) dequantisation, for checkpoints that store weights that way
(gpt-oss's experts).

A weight of ``[..., rows, cols]`` is stored as ``blocks`` ``[..., rows, cols / 32, 16]`` (uint8,
two 4-bit E2M1 codes per byte, the low nibble first) and ``scales`` ``[..., rows, cols / 32]``
(uint8 biased exponents, ``2 ** (s - 127)``): each run of 32 values shares one power-of-two
scale. lmhub dequantises at load time, one expert at a time, so the extra memory stays near one
expert's weight; it never writes MXFP4.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import torch

from lmhub.errors import WeightMapError

E2M1_VALUES: Final = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
"""The magnitudes of the eight E2M1 codes; the code's top bit is the sign."""

BLOCK: Final = 32
"""Values per shared scale."""


def dequantize_mxfp4(
    blocks: torch.Tensor, scales: torch.Tensor, *, dtype: torch.dtype = torch.bfloat16
) -> torch.Tensor:
    """Return the ``[..., rows, cols]`` weight that ``blocks``/``scales`` encode, in ``dtype``.

    Raises:
        WeightMapError: if the shapes do not fit together.
    """
    if blocks.shape[:-1] != scales.shape or blocks.shape[-1] != BLOCK // 2:
        raise WeightMapError(
            f"MXFP4 blocks of shape {tuple(blocks.shape)} do not fit scales of shape "
            f"{tuple(scales.shape)}: blocks must be [..., groups, {BLOCK // 2}] and scales "
            "[..., groups]. Check that the checkpoint is an MXFP4 one.",
        )
    magnitudes = torch.tensor(E2M1_VALUES, dtype=torch.float32, device=blocks.device)
    table = torch.cat([magnitudes, -magnitudes])  # codes 8..15 are the negatives
    *lead, rows, groups, half = blocks.shape
    flat_blocks = blocks.reshape(-1, rows, groups, half)
    flat_scales = scales.reshape(-1, rows, groups)
    out = torch.empty(flat_blocks.shape[0], rows, groups, BLOCK, dtype=dtype, device=blocks.device)
    for j in range(flat_blocks.shape[0]):  # one expert at a time bounds the temporaries
        codes = flat_blocks[j].to(torch.int32)
        pairs = torch.stack([codes & 0x0F, codes >> 4], dim=-1).flatten(-2)  # low nibble first
        exponent = flat_scales[j].to(torch.int32) - 127
        out[j] = torch.ldexp(table[pairs], exponent[..., None].float()).to(dtype)
    return out.reshape(*lead, rows, groups * BLOCK)


@dataclass(frozen=True)
class Mxfp4Dequantize:
    """A weight-map op reading two external tensors, ``blocks`` then ``scales``, as one bf16
    weight ``[..., rows, cols]`` (import only: lmhub exports dense weights)."""

    dtype: torch.dtype = torch.bfloat16
    """The dtype of the dequantised weight."""

    arity: int = 2
    """How many external tensors the op reads."""

    def forward(
        self, ts: list[torch.Tensor], n: int, resolve: object, key: str
    ) -> list[torch.Tensor]:
        del n, resolve
        blocks, scales = ts
        try:
            return [dequantize_mxfp4(blocks, scales, dtype=self.dtype)]
        except WeightMapError as exc:
            raise WeightMapError(f"'{key}': {exc}", key=key) from None

    def inverse(
        self, ts: list[torch.Tensor], n: int, resolve: object, key: str
    ) -> list[torch.Tensor]:
        raise WeightMapError(
            f"lmhub does not write MXFP4 tensors ('{key}'). Export the dense weights instead.",
            key=key,
        )
