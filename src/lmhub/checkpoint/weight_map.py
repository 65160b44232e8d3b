"""Declarative, reversible maps between checkpoint key layouts (e.g. Hugging Face <-> lmhub).

A :class:`WeightMap` is a list of :class:`KeyRule` patterns. ``{name}`` in a pattern matches
one dotted component, ``{name:path}`` matches several; the same placeholders fill the other side,
so one table drives both import and export and a round trip is exact. A rule may carry a pair of
mutually inverse tensor transforms (e.g. a RoPE permutation) for layouts that differ in more than
the name, or a chain of declarative :data:`TensorOp` rows read from the external side to the
native one and undone in reverse on export:

- :class:`Transpose` swaps two dimensions (GPT-2's ``Conv1D`` stores ``[in, out]``);
- :class:`Chunk` splits one external tensor into the rule's native tensors (a fused ``c_attn``
  into q/k/v), optionally per group of rows (GPT-NeoX interleaves q/k/v per head);
- :class:`Concat` joins several external tensors into one native tensor;
- :class:`Stack` stacks the tensors of every value of one placeholder (an expert index) into
  one native tensor (per-expert checkpoints into stacked expert weights).

A rule with several keys on one side is a group: its tensors are converted together once every
member has arrived, so a stream buffers only the pieces of the groups still incomplete. Sizes
that depend on the model (the number of heads) are named as config fields and filled in by
:meth:`WeightMap.bind`.

Example:
    >>> rule = KeyRule("model.layers.{i}.mlp.{proj}.weight", "layers.{i}.ffn.{proj}.weight")
    >>> wm = WeightMap([rule])
    >>> wm.to_native("model.layers.3.mlp.up_proj.weight")
    'layers.3.ffn.up_proj.weight'
    >>> wm.to_external("layers.3.ffn.up_proj.weight")
    'model.layers.3.mlp.up_proj.weight'
    >>> fused = KeyRule("h.{i}.c_attn.weight", ("l.{i}.q.weight", "l.{i}.k.weight",
    ...     "l.{i}.v.weight"), ops=(Transpose(), Chunk()))
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from lmhub.checkpoint.lazy import (
    LazyTensor,
    MaybeLazy,
    MemoryTensor,
    StoredTensor,
    lazy_cat,
    lazy_stack,
    read_all,
)
from lmhub.errors import WeightMapError

TensorFn = Callable[[torch.Tensor], torch.Tensor]

Size = int | str
"""A size in a tensor op: a number, or the name of a config field (see :meth:`WeightMap.bind`)."""

Resolve = Callable[[Size], int]

_PLACEHOLDER = re.compile(r"\{(\w+)(?::(path))?\}")


def _compile(pattern: str, path_names: frozenset[str]) -> tuple[re.Pattern[str], str]:
    """Turn ``a.{i}.b`` into a regex with named groups and a format template."""
    regex, pos = "", 0
    for m in _PLACEHOLDER.finditer(pattern):
        regex += re.escape(pattern[pos : m.start()])
        name = m.group(1)
        regex += f"(?P<{name}>.+)" if name in path_names else f"(?P<{name}>[^.]+)"
        pos = m.end()
    regex += re.escape(pattern[pos:])
    template = _PLACEHOLDER.sub(lambda m: "{" + m.group(1) + "}", pattern)
    return re.compile(regex + r"\Z"), template


# -- tensor operations ------------------------------------------------------------------------
#
# On import the built-in ops also take lazy tensors (lmhub.checkpoint.lazy), so a loader that
# needs only part of a native tensor (a tensor-parallel rank) can cut it before anything is read.
# Other ops and ``to_native_fn`` read their inputs whole first.


def _as_lazy(ts: Sequence[MaybeLazy]) -> list[LazyTensor] | None:
    """``ts`` as lazy tensors if any of them is lazy, else ``None`` (the eager path)."""
    if not any(isinstance(t, LazyTensor) for t in ts):
        return None
    return [t if isinstance(t, LazyTensor) else StoredTensor(MemoryTensor(t)) for t in ts]


def _split(
    t: MaybeLazy, dim: int, n: int, sizes: Sequence[int] | None, groups: int, key: str
) -> list[MaybeLazy]:
    """Split ``t`` along ``dim`` into ``n`` tensors; with ``groups`` > 1 the dimension is read
    as ``groups`` blocks, each split alike, and piece ``j`` gathers part ``j`` of every block."""
    dim = dim % t.ndim
    width = t.shape[dim]
    if groups <= 0 or width % groups:
        raise WeightMapError(
            f"The tensor '{key}' has {width} entries along dimension {dim}, which do not divide "
            f"into {groups} equal groups. Check that the checkpoint fits the model's config.",
            key=key,
        )
    per = width // groups
    if sizes is None:
        if per % n:
            raise WeightMapError(
                f"The tensor '{key}' has {per} entries per group along dimension {dim}, which "
                f"do not split into {n} equal parts. Check that the checkpoint fits the model.",
                key=key,
            )
        sizes = [per // n] * n
    if len(sizes) != n or sum(sizes) != per:
        raise WeightMapError(
            f"The tensor '{key}' has {per} entries per group along dimension {dim}, but the "
            f"weight map splits it into parts of {list(sizes)}. Check that the checkpoint fits "
            "the model's config.",
            key=key,
        )
    if isinstance(t, LazyTensor):
        lazy: list[MaybeLazy] = []
        offset = 0
        for size in sizes:
            if groups == 1:
                lazy.append(t.narrow(dim, offset, size))
            else:
                rows = torch.arange(offset, offset + size)
                lazy.append(
                    t.select_indices(dim, (torch.arange(groups)[:, None] * per + rows).flatten())
                )
            offset += size
        return lazy
    parts = t.unflatten(dim, (groups, per)).split(list(sizes), dim + 1)
    return [p.flatten(dim, dim + 1).contiguous() for p in parts]


def _join(ts: Sequence[MaybeLazy], dim: int, groups: int, key: str) -> MaybeLazy:
    """Undo :func:`_split`: concatenate along ``dim``, block by block when ``groups`` > 1."""
    dim = dim % ts[0].ndim
    bad = [tuple(t.shape) for t in ts if t.shape[dim] % groups]
    if groups <= 0 or bad:
        raise WeightMapError(
            f"The tensors joined into '{key}' have shapes {[tuple(t.shape) for t in ts]}, which "
            f"do not divide into {groups} groups along dimension {dim}. Check the model's config.",
            key=key,
        )
    try:
        lazy = _as_lazy(ts)
        if lazy is not None:
            widths = [t.shape[dim] // groups for t in lazy]
            pieces = [t.narrow(dim, g * w, w) for g in range(groups) for t, w in zip(lazy, widths)]
            return lazy_cat(pieces, dim)
        blocks = [t.unflatten(dim, (groups, t.shape[dim] // groups)) for t in ts]
        return torch.cat(blocks, dim + 1).flatten(dim, dim + 1)
    except (RuntimeError, ValueError):
        raise WeightMapError(
            f"The tensors joined into '{key}' have shapes {[tuple(t.shape) for t in ts]}, which "
            f"differ outside dimension {dim}. Check that they belong together.",
            key=key,
        ) from None


@dataclass(frozen=True)
class Transpose:
    """Swap two dimensions of every tensor (its own inverse).

    GPT-2's ``Conv1D`` stores a ``[in, out]`` weight where ``nn.Linear`` has ``[out, in]``.
    """

    dim0: int = 0
    """The first dimension swapped."""

    dim1: int = 1
    """The second dimension swapped."""

    def forward(
        self, ts: list[torch.Tensor], n: int, resolve: Resolve, key: str
    ) -> list[torch.Tensor]:
        del n, resolve, key
        return [
            t.transpose(self.dim0, self.dim1)
            if isinstance(t, LazyTensor)
            else t.transpose(self.dim0, self.dim1).contiguous()
            for t in ts
        ]

    def inverse(
        self, ts: list[torch.Tensor], n: int, resolve: Resolve, key: str
    ) -> list[torch.Tensor]:
        return self.forward(ts, n, resolve, key)


@dataclass(frozen=True)
class Chunk:
    """Split one external tensor into the rule's native tensors along ``dim`` (export joins them).

    ``groups`` > 1 reads the dimension as that many blocks (e.g. one per attention head), each
    holding every part in turn: GPT-NeoX stores q/k/v as ``[heads, 3, head_dim]``.
    """

    dim: int = 0
    """The dimension split."""

    sizes: tuple[Size, ...] | None = None
    """The width of each part within a group; ``None`` splits into equal parts."""

    groups: Size = 1
    """How many blocks the dimension holds, each split alike."""

    def forward(
        self, ts: list[torch.Tensor], n: int, resolve: Resolve, key: str
    ) -> list[torch.Tensor]:
        (t,) = ts
        sizes = None if self.sizes is None else [resolve(s) for s in self.sizes]
        return _split(t, self.dim, n, sizes, resolve(self.groups), key)

    def inverse(
        self, ts: list[torch.Tensor], n: int, resolve: Resolve, key: str
    ) -> list[torch.Tensor]:
        del n
        return [_join(ts, self.dim, resolve(self.groups), key)]


@dataclass(frozen=True)
class Concat:
    """Join the rule's external tensors into one native tensor along ``dim`` (export splits it).

    The fields mean what they mean for :class:`Chunk`, whose inverse this is.
    """

    dim: int = 0
    """The dimension joined."""

    sizes: tuple[Size, ...] | None = None
    """The width of each external part within a group, for the split on export; ``None`` means
    equal parts."""

    groups: Size = 1
    """How many blocks the joined dimension holds."""

    def forward(
        self, ts: list[torch.Tensor], n: int, resolve: Resolve, key: str
    ) -> list[torch.Tensor]:
        return Chunk(self.dim, self.sizes, self.groups).inverse(ts, n, resolve, key)

    def inverse(
        self, ts: list[torch.Tensor], n: int, resolve: Resolve, key: str
    ) -> list[torch.Tensor]:
        return Chunk(self.dim, self.sizes, self.groups).forward(ts, n, resolve, key)


@dataclass(frozen=True)
class Stack:
    """Stack the external tensors of ``over`` = 0 .. ``count`` - 1 into one native tensor along
    a new dimension ``dim`` (export unbinds it). The placeholder ``over`` appears in the external
    patterns only: ``model.layers.{i}.mlp.experts.{e}.up_proj.weight`` with ``Stack("e",
    "moe.num_experts")`` gathers every expert of layer ``i`` into ``[experts, out, in]``."""

    over: str
    """The external placeholder that numbers the stacked tensors."""

    count: Size
    """How many tensors are stacked (a number or a config field)."""

    dim: int = 0
    """The new dimension."""

    def forward(
        self, ts: list[torch.Tensor], n: int, resolve: Resolve, key: str
    ) -> list[torch.Tensor]:
        del n, resolve
        try:
            lazy = _as_lazy(ts)
            return [torch.stack(ts, self.dim) if lazy is None else lazy_stack(lazy, self.dim)]
        except (RuntimeError, ValueError):
            shapes = sorted({tuple(t.shape) for t in ts})
            raise WeightMapError(
                f"The tensors stacked into '{key}' have shapes {shapes}, which differ. Check "
                "that the checkpoint fits the model's config.",
                key=key,
            ) from None

    def inverse(
        self, ts: list[torch.Tensor], n: int, resolve: Resolve, key: str
    ) -> list[torch.Tensor]:
        del n, resolve, key
        return [t.contiguous() for t in ts[0].unbind(self.dim)]


class CustomOp(Protocol):
    """An op defined elsewhere (e.g. :class:`lmhub.checkpoint.mxfp4.Mxfp4Dequantize`): it reads
    ``arity`` external tensors into one native tensor."""

    arity: int

    def forward(
        self, ts: list[torch.Tensor], n: int, resolve: Resolve, key: str
    ) -> list[torch.Tensor]: ...

    def inverse(
        self, ts: list[torch.Tensor], n: int, resolve: Resolve, key: str
    ) -> list[torch.Tensor]: ...


TensorOp = Transpose | Chunk | Concat | Stack | CustomOp
"""One declarative step of a rule, applied external -> native on import and undone on export."""


# -- rules -------------------------------------------------------------------------------------

_Compiled = tuple[re.Pattern[str], str]


def _as_tuple(patterns: str | tuple[str, ...]) -> tuple[str, ...]:
    return (patterns,) if isinstance(patterns, str) else tuple(patterns)


@dataclass(frozen=True)
class KeyRule:
    """One correspondence between external key patterns and native ones.

    Each side is one pattern or a tuple of them; with several on a side, ``ops`` must hold the
    :class:`Chunk` or :class:`Concat` that turns one tensor into several or several into one.
    """

    external: str | tuple[str, ...]
    """The key pattern(s) in the external (e.g. Hugging Face) checkpoint."""

    native: str | tuple[str, ...]
    """The key pattern(s) in lmhub's module."""

    to_native_fn: TensorFn | None = None
    """A tensor transform applied on import (must be the inverse of ``to_external_fn``)."""

    to_external_fn: TensorFn | None = None
    """A tensor transform applied on export."""

    ops: tuple[TensorOp, ...] = ()
    """Declarative tensor operations, external -> native; export undoes them in reverse."""

    _ext: list[_Compiled] = field(init=False, repr=False, compare=False)
    _nat: list[_Compiled] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ext, nat = _as_tuple(self.external), _as_tuple(self.native)
        stacked = {op.over for op in self.ops if isinstance(op, Stack)}
        names = [frozenset(m.group(1) for m in _PLACEHOLDER.finditer(p)) for p in ext]
        native_names = [frozenset(m.group(1) for m in _PLACEHOLDER.finditer(p)) for p in nat]
        names += [n | stacked for n in native_names]
        in_native = any(stacked & n for n in native_names)
        if any(n != names[0] for n in names) or len(stacked) > 1 or in_native:
            raise ValueError(
                f"The patterns {ext + nat} must all use the same placeholders, except the one a "
                "Stack numbers, which only the external patterns use."
            )
        joins = [op for op in self.ops if isinstance(op, Chunk | Concat)]
        n_ext = len(ext)
        readers = [getattr(op, "arity", 1) for op in self.ops if getattr(op, "arity", 1) > 1]
        if readers == [n_ext]:  # a custom op reads every external tensor into one
            n_ext = 1
        many = (n_ext > 1) + (len(nat) > 1)
        fits = (
            (not joins and many == 0)
            or (stacked and not joins and n_ext == len(nat) == 1)
            or (len(joins) == 1 and isinstance(joins[0], Chunk) and n_ext == 1 < len(nat))
            or (len(joins) == 1 and isinstance(joins[0], Concat) and len(nat) == 1 < n_ext)
        )
        if not fits:
            raise ValueError(
                f"The rule {ext} -> {nat} needs one Chunk (one external key, several native) or "
                "one Concat (several external keys, one native), and only then."
            )
        # A placeholder marked `:path` anywhere spans several components everywhere.
        paths = frozenset(
            m.group(1) for p in ext + nat for m in _PLACEHOLDER.finditer(p) if m.group(2)
        )
        object.__setattr__(self, "_ext", [_compile(p, paths) for p in ext])
        object.__setattr__(self, "_nat", [_compile(p, paths) for p in nat])

    def _convert(
        self, tensors: list[torch.Tensor], *, to_native: bool, resolve: Resolve, key: str
    ) -> list[torch.Tensor]:
        if to_native:
            n = len(self._nat)
            for op in self.ops:
                if not isinstance(op, Transpose | Chunk | Concat | Stack):
                    tensors = read_all(tensors)  # a custom op needs the whole tensors
                tensors = op.forward(tensors, n, resolve, key)
            fn = self.to_native_fn
            return [fn(t) for t in read_all(tensors)] if fn else tensors
        if self.to_external_fn:
            tensors = [self.to_external_fn(t) for t in tensors]
        n = len(self._ext)
        for op in reversed(self.ops):
            tensors = op.inverse(tensors, n, resolve, key)
        return tensors


@dataclass
class _Match:
    rule: KeyRule
    index: int
    """Which pattern of the source side matched (with a Stack on import: which member)."""
    values: dict[str, str]
    resolve: Resolve

    def _stack(self) -> Stack | None:
        return next((op for op in self.rule.ops if isinstance(op, Stack)), None)

    def keys(self, to_native: bool) -> list[str]:
        """The keys of every pattern on the destination side."""
        if to_native:
            return [template.format(**self.values) for _, template in self.rule._nat]
        stack = self._stack()
        if stack is None:
            return [template.format(**self.values) for _, template in self.rule._ext]
        count = self.resolve(stack.count)
        return [
            template.format(**{**self.values, stack.over: str(j)})
            for _, template in self.rule._ext
            for j in range(count)
        ]

    def sources(self, to_native: bool) -> list[str]:
        """The keys of every pattern on the source side (the members of the group)."""
        return self.keys(not to_native)

    def slot(self) -> tuple[int, tuple[tuple[str, str], ...]]:
        """The group this key belongs to: its rule and placeholder values (a Stack's own
        placeholder left out, so every numbered member lands in one group)."""
        stack = self._stack()
        values = {k: v for k, v in self.values.items() if stack is None or k != stack.over}
        return id(self.rule), tuple(sorted(values.items()))


class WeightMap:
    """An ordered list of key rules plus the tied parameters the external layout omits."""

    def __init__(
        self,
        rules: Sequence[KeyRule],
        *,
        tied: Mapping[str, str] | None = None,
        ignored: Sequence[str] = (),
        config: Any = None,
    ) -> None:
        self.rules = list(rules)
        self.ignored = tuple(ignored)
        """External key patterns skipped on import: buffers some checkpoints carry that the
        model recomputes (causal-mask tables, RoPE frequencies)."""
        # `{name:path}` spans several components here too (a whole skipped module).
        self._ignored = [
            _compile(p, frozenset(m.group(1) for m in _PLACEHOLDER.finditer(p) if m.group(2)))[0]
            for p in self.ignored
        ]
        self.tied: dict[str, str] = dict(tied or {})
        """Native keys that alias another native key when weights are tied (alias -> source)."""
        self.config = config
        """The model config whose fields the sizes named in ops are read from (see :meth:`bind`)."""

    def bind(self, config: Any) -> WeightMap:
        """Return this map with the sizes its ops name (e.g. ``groups="num_heads"``) read from
        ``config``'s fields (or zero-argument methods).

        Example:
            >>> family.weight_map.bind(config).convert_to_native(reader.iter_tensors())
        """
        return WeightMap(self.rules, tied=self.tied, ignored=self.ignored, config=config)

    def _resolve(self, size: Size) -> int:
        if isinstance(size, int):
            return size
        if self.config is None or not hasattr(self.config, size.split(".")[0]):
            raise WeightMapError(
                f"The weight map sizes a tensor by the config field '{size}', but it is not bound "
                "to a config that has it. Call weight_map.bind(config) with the model's config.",
            )
        value = self.config
        for part in size.split("."):  # a nested field: "moe.num_experts"
            value = getattr(value, part) if value is not None else None
        return int(value() if callable(value) else value)

    def _find(self, key: str, *, to_native: bool) -> _Match | None:
        for rule in self.rules:
            for index, (pattern, _) in enumerate(rule._ext if to_native else rule._nat):
                m = pattern.match(key)
                if m:
                    found = _Match(rule, index, m.groupdict(), self._resolve)
                    stack = found._stack()
                    if stack is not None and to_native:
                        found.index = self._stack_member(found, stack, key)
                    return found
        return None

    def _stack_member(self, found: _Match, stack: Stack, key: str) -> int:
        """The position of ``key`` among the members of its Stack group."""
        count = self._resolve(stack.count)
        member = found.values[stack.over]
        if not member.isdigit() or int(member) >= count:
            raise WeightMapError(
                f"The checkpoint key '{key}' numbers its tensor {member!r}, but the model stacks "
                f"{count} of them ({stack.count!r}). Check that the checkpoint fits the config.",
                key=key,
            )
        return found.index * count + int(member)

    def to_native(self, key: str) -> str | None:
        """Return the native key for an external ``key``, or ``None`` if no rule matches.

        A key split into several native tensors gives the first of them.
        """
        found = self._find(key, to_native=True)
        return found.keys(True)[0] if found else None

    def to_external(self, key: str) -> str | None:
        """Return the external key for a native ``key``, or ``None`` if no rule matches.

        A key split into several external tensors gives the first of them.
        """
        found = self._find(key, to_native=False)
        return found.keys(False)[0] if found else None

    def reshapes(self, key: str) -> bool:
        """Whether the native ``key``'s rule joins, splits or transposes tensors (``ops``), so the
        tensor is not the external one under another name (GPT-2's ``c_attn``, say)."""
        found = self._find(key, to_native=False)
        return found is not None and bool(found.rule.ops)

    def _stream(
        self,
        items: Iterable[tuple[str, torch.Tensor]],
        *,
        to_native: bool,
        passthrough: frozenset[str] | set[str] = frozenset(),
        skip: frozenset[str] | set[str] = frozenset(),
    ) -> Iterator[tuple[str | None, torch.Tensor, str]]:
        """Yield ``(converted key or None, tensor, source key)``; a group's tensors are held
        until all of its members have arrived, and any still incomplete come last, unconverted
        (``None``)."""
        pending: dict[tuple[int, tuple[tuple[str, str], ...]], dict[int, tuple[str, torch.Tensor]]]
        pending = {}
        for key, tensor in items:
            if key in skip:
                continue
            if key in passthrough:
                yield key, tensor, key
                continue
            if to_native and any(p.match(key) for p in self._ignored):
                continue
            found = self._find(key, to_native=to_native)
            if found is None:
                yield None, tensor, key
                continue
            sources = found.sources(to_native)
            if len(sources) == 1:
                group = [tensor]
            else:
                slot = found.slot()
                members = pending.setdefault(slot, {})
                members[found.index] = (key, tensor)
                if len(members) < len(sources):
                    continue
                del pending[slot]
                group = [members[i][1] for i in range(len(sources))]
                key = " + ".join(sources)
            out = found.rule._convert(group, to_native=to_native, resolve=self._resolve, key=key)
            for new_key, t in zip(found.keys(to_native), out, strict=True):
                yield new_key, t, key
        for members in pending.values():
            for key, tensor in members.values():
                yield None, tensor, key

    def convert_to_native(
        self,
        items: Iterable[tuple[str, torch.Tensor]],
        *,
        native_keys: frozenset[str] | set[str] = frozenset(),
    ) -> Iterator[tuple[str | None, torch.Tensor, str]]:
        """Yield ``(native_key or None, tensor, original_key)`` one at a time.

        Keys already in ``native_keys`` (an lmhub checkpoint) pass through unchanged; keys
        matching an ``ignored`` pattern are dropped. Tensors
        joined into one native tensor are yielded once all have been read (under the original
        keys joined by `` + ``); the members of a group that never completes are yielded last,
        with ``None``.
        """
        return self._stream(items, to_native=True, passthrough=native_keys)

    def convert_to_external(
        self, items: Iterable[tuple[str, torch.Tensor]], *, tied: bool = False
    ) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield external ``(key, tensor)`` pairs; tied aliases are dropped when ``tied``.

        Raises:
            KeyError: if a native key has no rule (a weight map that does not cover the model),
                or a group of native tensors joined on export lacks a member.
        """
        skip = set(self.tied) if tied else set()
        for new_key, tensor, key in self._stream(items, to_native=False, skip=skip):
            if new_key is None:
                found = self._find(key, to_native=False)
                if found is None:
                    raise KeyError(f"The weight map has no rule for the native key '{key}'.")
                raise KeyError(
                    f"The weight map joins the native keys {found.sources(False)} into one "
                    f"external tensor, but only '{key}' of them was given."
                )
            yield new_key, tensor
