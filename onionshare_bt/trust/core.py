"""The web of trust as a pure core: the breadth-first walk and the search merge.

:class:`Walk` is a state machine with no I/O: it hands out one breadth-first level at a time
(:meth:`Walk.next_batch`) and is told what each node answered (:meth:`Walk.record`). The
thin driver :func:`walk` plugs in any async ``fetch(onion) -> NodeInfo`` and runs each level
concurrently; timeouts and transport belong to that function, not here.

Rules of the walk:

- a node's degree is its breadth-first distance from me (direct trusts are degree 1); nodes
  beyond ``Limits.depth`` are never fetched;
- a node trusted by several is visited once, at its lowest degree, ``via`` the first node (in
  breadth-first order) that listed it; ``me`` is never visited;
- ``Limits.fan_out`` caps how many of one node's trusts are followed (the first ones listed,
  after dropping duplicates, ``me`` and the node itself); my own direct list is not capped by it;
- ``Limits.total`` caps the nodes visited overall; nodes queued beyond it are dropped;
- an unreachable node is reported and not expanded; the rest of the walk goes on.

:func:`search` merges the public catalogues of the visited nodes.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Awaitable, Callable, Iterable


@dataclasses.dataclass(frozen=True)
class NodeInfo:
    """What a trusted node's ``/node`` document says about its trust list."""

    onion: str  # 56-char v3 address, no ".onion"
    trusts: tuple[str, ...]  # the onions it trusts (validated by the caller; may be empty)


@dataclasses.dataclass(frozen=True)
class Limits:
    """How far the walk goes: ``depth`` levels, ``fan_out`` per node, ``total`` in all."""

    depth: int = 1
    fan_out: int = 32
    total: int = 256

    def __post_init__(self) -> None:
        for field in ("depth", "fan_out", "total"):
            if getattr(self, field) < 0:
                raise ValueError(f"trust walk {field} must be >= 0")


@dataclasses.dataclass(frozen=True)
class Visit:
    """One visited node: its degree, who led to it, and whether it answered."""

    onion: str
    degree: int  # 1 for direct trusts
    via: str | None  # the onion that led to it (None for degree 1)
    reachable: bool
    error: str | None  # why unreachable


def _unique(onions: Iterable[str], skip: Iterable[str]) -> list[str]:
    """``onions`` in order without duplicates nor anything in ``skip``."""
    skip = set(skip)
    return [onion for onion in dict.fromkeys(onions) if onion not in skip]


class Walk:
    """A breadth-first walk of the trust graph, one level per batch, with no I/O.

    Call :meth:`next_batch`, fetch every onion it returns, :meth:`record` each result, and
    repeat until it returns ``[]`` (then :attr:`done` is true).
    """

    def __init__(self, me: str, direct: list[str], limits: Limits) -> None:
        self._me = me
        self._limits = limits
        self._seen: set[str] = {me}  # queued or visited, plus me
        self._order: list[str] = []  # handed out, in breadth-first order
        self._where: dict[str, tuple[int, str | None]] = {}  # onion -> (degree, via)
        self._results: dict[str, tuple[bool, str | None]] = {}  # onion -> (reachable, error)
        self._follow: dict[str, list[str]] = {}  # reachable onion -> trusts followed
        self._queue: list[tuple[str, int, str | None]] = []
        self._batch: list[str] = []
        self._pending: set[str] = set()
        if limits.depth >= 1:
            self._enqueue(((onion, None) for onion in direct), 1)

    def _enqueue(self, candidates: Iterable[tuple[str, str | None]], degree: int) -> None:
        """Queue the unseen ``(onion, via)`` candidates at ``degree``, within ``total``."""
        for onion, via in candidates:
            if onion in self._seen:
                continue
            if len(self._order) + len(self._queue) >= self._limits.total:
                return
            self._seen.add(onion)
            self._queue.append((onion, degree, via))

    def next_batch(self) -> list[tuple[str, int]]:
        """The whole next level to fetch, as ``(onion, degree)``; ``[]`` when done.

        :raises RuntimeError: if results of the previous batch are still outstanding
        """
        if self._pending:
            raise RuntimeError("record every onion of the previous batch first")
        batch, self._queue = self._queue, []
        self._batch = [onion for onion, _, _ in batch]
        for onion, degree, via in batch:
            self._order.append(onion)
            self._where[onion] = (degree, via)
            self._pending.add(onion)
        return [(onion, degree) for onion, degree, _ in batch]

    def record(self, onion: str, info: NodeInfo | None, error: str | None = None) -> None:
        """The result of fetching ``onion``: its node document, or ``None`` and why.

        A node with an ``error``, no document, or a document naming another onion is
        unreachable and is not expanded.

        :raises ValueError: if ``onion`` is not awaiting a result
        """
        if onion not in self._pending:
            raise ValueError(f"{onion} is not awaiting a result")
        self._pending.discard(onion)
        if error is not None or info is None:
            self._results[onion] = (False, error or "no node document")
        elif info.onion != onion:
            self._results[onion] = (False, "its node document names another onion")
        else:
            self._results[onion] = (True, None)
            followed = _unique(info.trusts, (self._me, onion))
            self._follow[onion] = followed[: self._limits.fan_out]
        if not self._pending:
            self._expand()

    def _expand(self) -> None:
        """Queue the next level from the trusts of the finished batch's reachable nodes."""
        if not self._batch:
            return
        degree = self._where[self._batch[0]][0]
        if degree >= self._limits.depth:
            return
        self._enqueue(((trust, onion) for onion in self._batch
                       for trust in self._follow.get(onion, ())), degree + 1)

    @property
    def done(self) -> bool:
        """True when nothing is outstanding and nothing is left to fetch."""
        return not self._pending and not self._queue

    def visits(self) -> list[Visit]:
        """Every node with a result, in breadth-first order."""
        return [Visit(onion, *self._where[onion], *self._results[onion])
                for onion in self._order if onion in self._results]

    def tree(self) -> dict:
        """The walk as a tree rooted at me, for ``obt trust graph``.

        :returns: ``{"onion": me, "children": [{"onion", "degree", "reachable", "error",
          "children": [...]}, ...]}``, children in breadth-first order
        """
        root: dict = {"onion": self._me, "children": []}
        nodes: dict[str | None, dict] = {None: root}
        for visit in self.visits():
            node = {
                "onion": visit.onion, "degree": visit.degree, "reachable": visit.reachable,
                "error": visit.error, "children": [],
            }
            nodes[visit.onion] = node
            nodes[visit.via]["children"].append(node)
        return root


async def walk(
    me: str, direct: list[str], limits: Limits,
    fetch: Callable[[str], Awaitable[NodeInfo | None]],
) -> list[Visit]:
    """Drive a :class:`Walk`, fetching each level concurrently.

    :param fetch: ``await fetch(onion)`` returns the node's :class:`NodeInfo`; it owns its
      own time bound. An ``Exception`` it raises marks the node unreachable (with its text);
      anything else (cancellation, ``KeyboardInterrupt``) propagates.
    :returns: the visits in breadth-first order
    """
    state = Walk(me, direct, limits)
    while batch := state.next_batch():
        answers = await asyncio.gather(
            *(fetch(onion) for onion, _ in batch), return_exceptions=True)
        for (onion, _), answer in zip(batch, answers):
            if isinstance(answer, Exception):
                state.record(onion, None, str(answer) or type(answer).__name__)
            elif isinstance(answer, BaseException):
                raise answer
            else:
                state.record(onion, answer)
    return state.visits()


@dataclasses.dataclass(frozen=True)
class Item:
    """One entry of a node's public catalogue."""

    name: str
    size: int
    infohash: str
    uri: str
    added: float
    files: int
    #: what its node says of it ("" if nothing)
    description: str = ""
    #: "share" (a torrent: obt get) or "cast" (a live broadcast: obt listen; its
    #: ``infohash`` is only a key, the SHA-1 of its URI, and ``size`` and ``files`` are 0)
    kind: str = "share"


def _matches(item: Item, terms: list[str]) -> bool:
    """Every term is in the name or the description, or starts the infohash (all
    case-insensitive)."""
    name, infohash = item.name.casefold(), item.infohash.casefold()
    description = item.description.casefold()
    return all(term in name or term in description or infohash.startswith(term)
               for term in terms)


def search(
    items_by_node: dict[str, list[Item]], degrees: dict[str, int], terms: list[str],
) -> list[dict]:
    """Merge the catalogues of the trusted set into one result list.

    :param items_by_node: each node's public catalogue
    :param degrees: each node's degree; nodes without one are not in the set and are skipped
    :param terms: all must match (blank terms are ignored; none matches everything)
    :returns: dicts ``{name, size, infohash, uri, added, files, description, kind, node,
      degree}``
      sorted by
      degree then name; an infohash offered by several nodes appears once, at the lowest
      degree
    """
    wanted = [term.strip().casefold() for term in terms if term.strip()]
    best: dict[str, dict] = {}
    for node in sorted(items_by_node):
        if node not in degrees:
            continue
        for item in items_by_node[node]:
            if not _matches(item, wanted):
                continue
            row = {**dataclasses.asdict(item), "node": node, "degree": degrees[node]}
            key = item.infohash.casefold()
            if key not in best or _rank(row) < _rank(best[key]):
                best[key] = row
    return sorted(best.values(), key=_rank)


def _rank(row: dict) -> tuple:
    """Sort key of a search result: degree, then name, then node for a stable order."""
    return (row["degree"], row["name"].casefold(), row["name"], row["node"])
