"""Text generation: greedy and sampled decoding with a KV cache, stop criteria and streaming.

Example:
    >>> from lmhub.generation import generate
    >>> out = generate(model, torch.tensor([[1, 2, 3]]), max_new_tokens=8)
"""

from lmhub.generation.compiled import CompileFallbackWarning
from lmhub.generation.generate import generate, generate_stream
from lmhub.generation.options import GenerationOptions
from lmhub.generation.sampling import (
    apply_repetition_penalty,
    next_token,
    seen_tokens,
    top_k_filter,
    top_p_filter,
)
from lmhub.generation.seq2seq import generate_seq2seq, stream_seq2seq
from lmhub.generation.stopping import StopCriteria

__all__ = [
    "CompileFallbackWarning",
    "GenerationOptions",
    "StopCriteria",
    "apply_repetition_penalty",
    "generate",
    "generate_seq2seq",
    "generate_stream",
    "next_token",
    "seen_tokens",
    "stream_seq2seq",
    "top_k_filter",
    "top_p_filter",
]
