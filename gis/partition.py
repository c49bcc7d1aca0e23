"""Balanced territories: split H3 cells into N parts, each connected, of near-equal weight.

The initial split is METIS (through pymetis): multilevel k-way graph partitioning is the
standard method for balanced parts with short borders, KarypisLab keeps it maintained, and it
splits 10^5–10^6 cells in well under a second. networkx was not chosen: its partitioners
(Kernighan–Lin bisection, community detection) do not aim at k parts of equal weight.

METIS balances integer weights only within its tolerance and its ``contig`` option is best
effort, so steps in plain Python over the cell graph follow and make the guarantees:

1. *repair*: each part keeps its heaviest connected piece; the other pieces are freed and
   regrown into the neighbouring parts, lightest part first (empty parts get a seed cell);
2. *diffuse*: boundary cells move from a heavier part to its lightest neighbouring part when
   the cell weighs less than the difference and the donor stays connected (the donor's cells
   around the moved cell still touch each other); every move lowers the sum of squared part
   weights, so it ends;
3. *kick*: when the heaviest part is stuck (a hot cluster of incidents whose cells are each
   too heavy to move), its best boundary cell is pushed to the lightest neighbour anyway and
   diffusion runs again; the kick is kept only if the heaviest part got lighter;
4. *restart*: if the goal is still missed, the next METIS start (other seed, or without
   ``contig``) is tried, and the best result kept;
5. *check*: every part is tested for connectivity; the result says whether all are.

With ``keep_current`` the start is the current assignment instead of METIS, and diffusion
only moves cells out of parts above the goal (or into parts below it), stopping as soon as
the goal holds, so few cells change hands; METIS starts are tried only when that start
cannot reach the tolerance, and then the result within it that moves fewest cells wins.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import pymetis
from h3.api import basic_int as h3i
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from gis.errors import Unprocessable

FREE = -1
METIS_SCALE = 10_000_000
MAX_SWEEPS = 500
MAX_KICKS = 40
METIS_STARTS = ((True, 0), (True, 1), (True, 2), (False, 0), (False, 1), (False, 2))
"""(contiguous, seed) of the METIS starts, tried in turn until one reaches the goal."""
EPSILON_SHARE = 1e-3
"""Every cell weighs at least this share of the mean cell weight, so zero-weight cells move."""


@dataclass(frozen=True)
class CellGraph:
    """The H3 adjacency of a list of cells: ``neighbours[i]`` are the indices next to cell i."""

    cells: np.ndarray
    neighbours: list[list[int]]

    def csr(self) -> tuple[np.ndarray, np.ndarray]:
        """The graph as METIS's (xadj, adjncy) arrays."""
        xadj = np.zeros(len(self.neighbours) + 1, dtype=np.int64)
        np.cumsum([len(n) for n in self.neighbours], out=xadj[1:])
        adjncy = np.fromiter(
            chain.from_iterable(self.neighbours), dtype=np.int64, count=int(xadj[-1])
        )
        return xadj, adjncy


@dataclass(frozen=True)
class Partition:
    """A split of the cells: a territory per cell and what it achieved."""

    labels: np.ndarray
    """Territory (0..n-1) of each cell, in the order of the input cells."""
    part_weights: np.ndarray
    balance: float
    """Largest territory weight over the mean territory weight."""
    connected: bool
    """Whether every territory is connected through H3 adjacency."""
    moved: int
    """Cells whose territory differs from the current one (every cell when none was given)."""


def cell_graph(cells: Sequence[int]) -> CellGraph:
    """The adjacency graph of ``cells`` (H3 neighbours that are themselves in the list)."""
    ints = [int(c) for c in cells]
    index = {c: i for i, c in enumerate(ints)}
    disk = h3i.grid_disk
    neighbours = [[index[n] for n in disk(c, 1) if n != c and n in index] for c in ints]
    return CellGraph(np.asarray(ints, dtype=np.int64), neighbours)


def components(graph: CellGraph) -> np.ndarray:
    """The connected piece (0..k-1) each cell belongs to."""
    xadj, adjncy = graph.csr()
    n = len(graph.neighbours)
    matrix = csr_matrix((np.ones(len(adjncy), dtype=np.int8), adjncy, xadj), shape=(n, n))
    return connected_components(matrix, directed=False)[1]


def is_connected(graph: CellGraph, members: Sequence[int]) -> bool:
    """Whether the cells at indices ``members`` form one connected piece."""
    if not len(members):
        return False
    inside = set(int(m) for m in members)
    start = next(iter(inside))
    seen = {start}
    todo = [start]
    while todo:
        for j in graph.neighbours[todo.pop()]:
            if j in inside and j not in seen:
                seen.add(j)
                todo.append(j)
    return len(seen) == len(inside)


def allot_parts(n_parts: int, comp: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """How many territories each connected piece gets: at least one, then each next one to
    the piece whose territories would otherwise be heaviest."""
    k = int(comp.max()) + 1
    if n_parts < k:
        raise Unprocessable(
            f"the grid is in {k} separate pieces: at least {k} territories are needed for "
            "each to be connected",
            code="too_few_territories",
        )
    piece_weight = np.bincount(comp, weights, k)
    sizes = np.bincount(comp, minlength=k)
    counts = np.ones(k, dtype=np.int64)
    heap = [(-piece_weight[i], i) for i in range(k) if sizes[i] > 1]
    heapq.heapify(heap)
    for _ in range(n_parts - k):
        _, i = heapq.heappop(heap)
        counts[i] += 1
        if counts[i] < sizes[i]:
            heapq.heappush(heap, (-piece_weight[i] / counts[i], i))
    return counts


def partition(
    cells: Sequence[int],
    weights: Sequence[float],
    n_parts: int,
    current: Sequence[int] | None = None,
    keep_current: bool = False,
    tolerance: float = 1.10,
) -> Partition:
    """Split ``cells`` into ``n_parts`` connected territories of near-equal total weight.

    ``current`` gives each cell's present territory (0..n_parts-1, or -1 for none): the
    result's territories are numbered to match it as far as possible, and with
    ``keep_current`` the split starts from it and moves as few cells as the balance needs.
    The refinement aims at half of ``tolerance``'s margin (1.05 for 1.10); when a start
    cannot get there (a few very heavy cells next to each other), the next METIS start is
    tried, and the best result kept.
    """
    w = _checked_weights(cells, weights, n_parts)
    cur = _checked_current(current, len(w), n_parts)
    graph = cell_graph(cells)
    work = w + EPSILON_SHARE * w.sum() / len(w)
    comp = components(graph)
    counts = allot_parts(n_parts, comp, work)
    goal = 1 + (tolerance - 1) / 2
    candidates: list[np.ndarray] = []
    if keep_current and (cur >= 0).any():
        labels, part_piece = _start_from_current(comp, counts, cur, n_parts)
        candidates.append(_finish(graph, work, comp, labels, part_piece, goal, True))
        if _balance(candidates[0], w, n_parts) <= tolerance:
            return _result(graph, w, candidates[0], cur, n_parts)
    for contiguous, seed in METIS_STARTS:
        labels, part_piece = _start_from_metis(graph, comp, counts, work, seed, contiguous)
        labels = _finish(graph, work, comp, labels, part_piece, goal, False)
        candidates.append(_match_names(labels, cur, n_parts) if current is not None else labels)
        if _balance(candidates[-1], w, n_parts) <= goal:
            break
    return _result(graph, w, _best(candidates, w, cur, n_parts, tolerance), cur, n_parts)


def _finish(
    graph: CellGraph,
    work: np.ndarray,
    comp: np.ndarray,
    labels: np.ndarray,
    part_piece: dict[int, int],
    goal: float,
    only_from_heavy: bool,
) -> np.ndarray:
    """A start made whole: stray pieces regrown, empty parts seeded, balance refined."""
    n_parts = len(part_piece)
    _free_stray_pieces(graph, work, labels, n_parts)
    _seed_empty_parts(graph, work, labels, comp, part_piece)
    _free_stray_pieces(graph, work, labels, n_parts)
    _grow(graph, work, labels, n_parts)
    _refine(graph, work, labels, n_parts, goal, only_from_heavy)
    return labels


def _balance(labels: np.ndarray, w: np.ndarray, n_parts: int) -> float:
    part_weights = np.bincount(labels, w, n_parts)
    return float(part_weights.max() / part_weights.mean())


def _best(
    candidates: list[np.ndarray], w: np.ndarray, cur: np.ndarray, n_parts: int, tolerance: float
) -> np.ndarray:
    """The candidate within ``tolerance`` that moves fewest cells, else the best balanced."""
    within = [c for c in candidates if _balance(c, w, n_parts) <= tolerance]
    if within:
        return min(within, key=lambda c: int((c != cur).sum()))
    return min(candidates, key=lambda c: _balance(c, w, n_parts))


def _result(
    graph: CellGraph, w: np.ndarray, labels: np.ndarray, cur: np.ndarray, n_parts: int
) -> Partition:
    part_weights = np.bincount(labels, w, n_parts)
    connected = all(is_connected(graph, np.flatnonzero(labels == p)) for p in range(n_parts))
    return Partition(
        labels=labels,
        part_weights=part_weights,
        balance=float(part_weights.max() / part_weights.mean()),
        connected=connected,
        moved=int((labels != cur).sum()),
    )


def _checked_weights(cells: Sequence[int], weights: Sequence[float], n_parts: int) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    if len(w) != len(cells):
        raise ValueError("cells and weights differ in length")
    if n_parts < 1:
        raise Unprocessable("at least one territory is needed", code="too_few_territories")
    if len(w) < n_parts:
        raise Unprocessable(
            f"{len(w)} cells cannot make {n_parts} territories", code="too_many_territories"
        )
    if not np.isfinite(w).all() or (w < 0).any():
        raise Unprocessable("cell weights must be finite and not negative", code="invalid_weight")
    if w.sum() <= 0:
        raise Unprocessable(
            "the weight is zero on every cell: nothing to balance", code="zero_weight"
        )
    return w


def _checked_current(current: Sequence[int] | None, n: int, n_parts: int) -> np.ndarray:
    if current is None:
        return np.full(n, FREE, dtype=np.int64)
    cur = np.asarray(current, dtype=np.int64)
    if len(cur) != n:
        raise ValueError("cells and current labels differ in length")
    return np.where((cur >= 0) & (cur < n_parts), cur, FREE)


def _start_from_metis(
    graph: CellGraph,
    comp: np.ndarray,
    counts: np.ndarray,
    work: np.ndarray,
    seed: int,
    contiguous: bool,
) -> tuple[np.ndarray, dict[int, int]]:
    """METIS k-way split of each connected piece into its allotted number of parts."""
    labels = np.empty(len(work), dtype=np.int64)
    part_piece: dict[int, int] = {}
    base = 0
    for piece, k in enumerate(counts.tolist()):
        idx = np.flatnonzero(comp == piece)
        part_piece.update({base + j: piece for j in range(k)})
        if k == 1:
            labels[idx] = base
        else:
            labels[idx] = base + _metis(graph, idx, work[idx], k, seed, contiguous)
        base += k
    return labels, part_piece


def _metis(
    graph: CellGraph, idx: np.ndarray, work: np.ndarray, k: int, seed: int, contiguous: bool
) -> np.ndarray:
    local = {int(g): i for i, g in enumerate(idx)}
    sub = [[local[j] for j in graph.neighbours[g]] for g in idx.tolist()]
    xadj, adjncy = CellGraph(idx, sub).csr()
    vweights = np.maximum(1, np.rint(work / work.sum() * METIS_SCALE)).astype(np.int64)
    options = pymetis.Options(seed=seed, ufactor=20, contig=int(contiguous))
    _, parts = pymetis.part_graph(
        k, pymetis.CSRAdjacency(xadj, adjncy), vweights=vweights, options=options
    )
    return np.asarray(parts, dtype=np.int64)


def _start_from_current(
    comp: np.ndarray, counts: np.ndarray, cur: np.ndarray, n_parts: int
) -> tuple[np.ndarray, dict[int, int]]:
    """The current labels, each piece keeping the parts that hold most of its cells."""
    labels = np.full(len(cur), FREE, dtype=np.int64)
    part_piece: dict[int, int] = {}
    held = set(cur[cur >= 0].tolist())
    spare = [p for p in range(n_parts) if p not in held] + sorted(held)
    for piece in np.argsort(-np.bincount(comp)).tolist():
        idx = np.flatnonzero(comp == piece)
        present = np.bincount(cur[idx][cur[idx] >= 0], minlength=n_parts)
        ranked = [
            p
            for p in np.argsort(-present, kind="stable").tolist()
            if present[p] > 0 and p not in part_piece
        ]
        chosen = ranked[: counts[piece]]
        for p in spare:
            if len(chosen) >= counts[piece]:
                break
            if p not in part_piece and p not in chosen:
                chosen.append(p)
        part_piece.update({p: piece for p in chosen})
        keep = idx[np.isin(cur[idx], chosen)]
        labels[keep] = cur[keep]
    return labels, part_piece


def _pieces(graph: CellGraph, members: np.ndarray) -> list[list[int]]:
    """The connected pieces of one part."""
    inside = set(members.tolist())
    pieces = []
    while inside:
        start = inside.pop()
        piece = [start]
        todo = [start]
        while todo:
            for j in graph.neighbours[todo.pop()]:
                if j in inside:
                    inside.discard(j)
                    piece.append(j)
                    todo.append(j)
        pieces.append(piece)
    return pieces


def _free_stray_pieces(
    graph: CellGraph, work: np.ndarray, labels: np.ndarray, n_parts: int
) -> None:
    """Each part keeps its heaviest connected piece; the cells of its other pieces go free."""
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_parts + 1))
    for part in range(n_parts):
        members = order[bounds[part] : bounds[part + 1]]
        pieces = _pieces(graph, members)
        if len(pieces) > 1:
            pieces.sort(key=lambda p: work[p].sum(), reverse=True)
            for stray in pieces[1:]:
                labels[stray] = FREE


def _seed_empty_parts(
    graph: CellGraph,
    work: np.ndarray,
    labels: np.ndarray,
    comp: np.ndarray,
    part_piece: dict[int, int],
) -> None:
    """Give each part with no cell one cell of its piece: a free one far from the other
    parts, else the innermost cell of the piece's heaviest part."""
    sizes = np.bincount(labels[labels >= 0], minlength=len(part_piece))
    for part, piece in sorted(part_piece.items()):
        if sizes[part] > 0:
            continue
        idx = np.flatnonzero(comp == piece)
        held = labels[idx]
        if (held == FREE).any():
            cell = _farthest(graph, idx[held != FREE].tolist(), idx[held == FREE].tolist())
        else:
            weight = {p: work[idx[held == p]].sum() for p in set(held.tolist()) if sizes[p] > 1}
            donor = max(weight, key=weight.__getitem__)
            cell = _farthest(graph, idx[held != donor].tolist(), idx[held == donor].tolist())
            sizes[donor] -= 1
        labels[cell] = part
        sizes[part] = 1


def _farthest(graph: CellGraph, sources: list[int], candidates: list[int]) -> int:
    """The candidate the most cell steps away from ``sources`` (from the candidates' own
    edge when there are no sources)."""
    if not sources:
        inside = set(candidates)
        sources = [
            c
            for c in candidates
            if any(j not in inside for j in graph.neighbours[c]) or len(graph.neighbours[c]) < 6
        ]
    dist = dict.fromkeys(sources, 0)
    todo = deque(sources)
    while todo:
        i = todo.popleft()
        for j in graph.neighbours[i]:
            if j not in dist:
                dist[j] = dist[i] + 1
                todo.append(j)
    return max(candidates, key=lambda j: dist.get(j, 0))


def _grow(graph: CellGraph, work: np.ndarray, labels: np.ndarray, n_parts: int) -> None:
    """Hand every free cell to a neighbouring part, always growing the lightest part."""
    free = set(np.flatnonzero(labels == FREE).tolist())
    if not free:
        return
    part_weight = np.bincount(labels[labels >= 0], work[labels >= 0], n_parts).tolist()
    frontier: list[deque[int]] = [deque() for _ in range(n_parts)]
    for i in free:
        for j in graph.neighbours[i]:
            if labels[j] >= 0:
                frontier[labels[j]].append(i)
    heap = [(part_weight[p], p) for p in range(n_parts) if frontier[p]]
    heapq.heapify(heap)
    while heap and free:
        _, p = heapq.heappop(heap)
        queue = frontier[p]
        while queue and queue[0] not in free:
            queue.popleft()
        if not queue:
            continue
        cell = queue.popleft()
        free.discard(cell)
        labels[cell] = p
        part_weight[p] += work[cell]
        queue.extend(j for j in graph.neighbours[cell] if j in free)
        heapq.heappush(heap, (part_weight[p], p))


def _refine(
    graph: CellGraph,
    work: np.ndarray,
    labels: np.ndarray,
    n_parts: int,
    goal: float,
    only_from_heavy: bool,
) -> None:
    """Diffuse weight from heavier to lighter parts; when the heaviest part is stuck (its
    boundary cells all too heavy to move), kick one of them to its lightest neighbouring
    part and diffuse again, keeping the kick only if the heaviest part got lighter."""
    xadj, adjncy = graph.csr()
    edges = (np.repeat(np.arange(len(labels)), np.diff(xadj)), adjncy)
    _diffuse(graph, work, labels, n_parts, goal, only_from_heavy, edges)
    tried: set[int] = set()
    for _ in range(MAX_KICKS):
        part_weight = np.bincount(labels, work, n_parts)
        if part_weight.max() <= goal * part_weight.mean():
            break
        kick = _kick(graph, work, labels, part_weight, tried)
        if kick is None:
            break
        before = labels.copy()
        tried.add(kick[0])
        labels[kick[0]] = kick[1]
        _diffuse(graph, work, labels, n_parts, goal, only_from_heavy, edges)
        if np.bincount(labels, work, n_parts).max() >= part_weight.max():
            labels[:] = before


def _kick(
    graph: CellGraph,
    work: np.ndarray,
    labels: np.ndarray,
    part_weight: np.ndarray,
    tried: set[int],
) -> tuple[int, int] | None:
    """The boundary cell of the heaviest part, and the lightest part next to it, whose move
    leaves the heavier of the two lightest (the donor staying connected), if any."""
    heavy = int(np.argmax(part_weight))
    members = np.flatnonzero(labels == heavy).tolist()
    if len(members) <= 1:
        return None
    best: tuple[float, int, int] | None = None
    for c in members:
        others = {int(labels[j]) for j in graph.neighbours[c]} - {heavy}
        if not others or c in tried:
            continue
        q = min(others, key=part_weight.__getitem__)
        score = max(part_weight[heavy] - work[c], part_weight[q] + work[c])
        if (best is None or score < best[0]) and _keeps_donor_connected(
            graph.neighbours, labels, c, heavy
        ):
            best = (score, c, q)
    return None if best is None else (best[1], best[2])


def _diffuse(
    graph: CellGraph,
    work: np.ndarray,
    labels: np.ndarray,
    n_parts: int,
    goal: float,
    only_from_heavy: bool,
    edges: tuple[np.ndarray, np.ndarray],
) -> None:
    """Move boundary cells from heavier to lighter neighbouring parts, keeping every donor
    connected, until every part is within ``goal`` of the mean (above and below) or no move
    helps. ``only_from_heavy`` moves a cell only out of a part above the goal or into one
    below it."""
    lab = labels.tolist()
    w = work.tolist()
    nb = graph.neighbours
    part_weight = np.bincount(labels, work, n_parts).tolist()
    size = np.bincount(labels, minlength=n_parts).tolist()
    mean = sum(part_weight) / n_parts
    high, low = goal * mean, (2 - goal) * mean
    margin = 1e-9 * mean

    def unbalanced() -> bool:
        return max(part_weight) > high or min(part_weight) < low

    src, dst = edges
    for _ in range(MAX_SWEEPS):
        if not unbalanced():
            break
        moved = 0
        boundary = np.unique(src[labels[src] != labels[dst]]).tolist()
        queue = deque(sorted(boundary, key=lambda c: -part_weight[lab[c]]))
        while queue:
            c = queue.popleft()
            p = lab[c]
            others = {lab[j] for j in nb[c]} - {p}
            if not others or size[p] <= 1:
                continue
            q = min(others, key=part_weight.__getitem__)
            if only_from_heavy and part_weight[p] <= high and part_weight[q] >= low:
                continue
            if not w[c] + margin < part_weight[p] - part_weight[q] or not _keeps_donor_connected(
                nb, lab, c, p
            ):
                continue
            lab[c] = q
            part_weight[p] -= w[c]
            part_weight[q] += w[c]
            size[p] -= 1
            size[q] += 1
            moved += 1
            queue.extend(j for j in nb[c] if lab[j] == p)
            if not unbalanced():
                break
        labels[:] = lab
        if not moved:
            break


def _keeps_donor_connected(nb: list[list[int]], lab: list[int], c: int, p: int) -> bool:
    """Whether part ``p`` stays connected without cell ``c``: true when c's neighbours in p
    are linked among themselves (a path through c can then go round it)."""
    around = [j for j in nb[c] if lab[j] == p]
    if not around:
        return False
    ring = set(around)
    seen = {around[0]}
    todo = [around[0]]
    while todo:
        for j in nb[todo.pop()]:
            if j in ring and j not in seen:
                seen.add(j)
                todo.append(j)
    return len(seen) == len(ring)


def _match_names(labels: np.ndarray, cur: np.ndarray, n_parts: int) -> np.ndarray:
    """Renumber the parts so that as many cells as possible keep their current part."""
    held = cur >= 0
    overlap = np.zeros((n_parts, n_parts), dtype=np.int64)
    np.add.at(overlap, (labels[held], cur[held]), 1)
    rows, cols = linear_sum_assignment(-overlap)
    rename = np.empty(n_parts, dtype=np.int64)
    rename[rows] = cols
    return rename[labels]
