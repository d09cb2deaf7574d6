"""Square attack (Andriushchenko et al., ECCV 2020): batched random search on the margin loss."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from robustness_checks.attacks.candidates import Candidates
from robustness_checks.attacks.evaluation import Evaluator, Objective
from robustness_checks.attacks.layout import Rows
from robustness_checks.attacks.regions import RandomSource, Region, unit_noise
from robustness_checks.execution.random_streams import random_bits

# Iterations (rescaled to a budget of 10000) after which the square's area fraction p halves.
P_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
DEFAULT_P_INIT = {"inf": 0.8, "2": 0.1}
_POSITIVE_31 = (1 << 31) - 1


def square(
    ev: Evaluator,
    objective: Objective,
    rows: Rows,
    best: Candidates,
    *,
    queries: int,
    p_init: float | None,
    generator: RandomSource,
    retire: Sequence[tuple[int, float]] = (),
    stall: int | None = None,
) -> None:
    """Run the Square attack on every row not yet successful in `best`, `queries` model
    queries per row at most (the start point included), and merge its final point into `best`.

    `retire`: (query, share) pairs; after `query` queries a row whose margin is still above
    `share` of its margin at the start point stops there (a per-row rule, so batches do not
    matter). The rows Square breaks late have made most of their progress early, so this saves
    most of the queries on rows it would never break (validated in benchmarks/README.md).
    `stall`: a row whose last `stall` proposals were all refused stops (on small inputs the
    search ends in a point no square move improves, and every later query is spent there).

    Each row minimises the margin z_y - max_{i != y} z_i (targeted: max_{i != t} z_i - z_t) and
    accepts a proposal only where it lowers the margin or succeeds; a row stops querying as soon
    as it succeeds, so `ev` counts exactly the queries made. Inputs are seen as (C, H, W)
    grids: (d,) as (1, 1, d), (C, L) as (C, 1, L), more leading dims merged into C. On a grid of
    height 1 the "square" is an interval covering the fraction p of the positions.
    L-inf: vertical stripes of +-eps start, then the window is set to x0 +- eps (one sign per
    channel); a proposal equal to the current point takes other signs (as the authors' code does).
    L2: the reference's start (a grid of +-eta bumps scaled to eps) and its update that moves
    the mass of a second window into the first. Square positions include the last row and
    column (the reference's randint leaves them out). Random numbers: one draw per example from
    `generator` seeds a counter-based stream per (example, iteration), so results depend neither
    on the batch, nor on which rows are still active, nor on other eps.
    """
    if p_init is None:
        p_init = DEFAULT_P_INIT[rows.norm]
    grid = _grid(tuple(rows.x.shape[1:]))
    seeds = _example_seeds(rows.n, generator, rows.x.device)
    pending = (~best.success).nonzero().squeeze(1)
    if pending.numel() == 0:  # splitting an empty tensor would still give one empty chunk
        return
    checkpoints = dict(retire)
    for index in rows.chunks(pending):
        _run(ev, objective, rows, best, index, seeds, grid, queries, p_init, checkpoints, stall)


def _run(
    ev: Evaluator,
    objective: Objective,
    rows: Rows,
    best: Candidates,
    index: Tensor,
    seeds: Tensor,
    grid: tuple[int, int, int],
    queries: int,
    p_init: float,
    checkpoints: dict[int, float],
    stall: int | None,
) -> None:
    """The random search on the rows `index`, all at once; finished rows are merged into `best`."""
    examples = rows.examples(index)
    region = rows.region(index, examples)
    labels = rows.labels.index_select(0, index)
    seeds = seeds.index_select(0, examples)
    proposer = _Linf(grid) if rows.norm == "inf" else _L2(grid)
    x = region.start(proposer.start(seeds, region.x0.dtype).view_as(region.x0))
    logits = ev(x)
    margin = _margin(logits, labels, objective.targeted)
    start = margin
    accepted = torch.zeros_like(index)  # the last query whose proposal a row accepted
    for i in range(queries - 1):
        stop = objective.success(logits, labels)
        if i + 1 in checkpoints:  # i + 1 queries made
            stop = stop | (margin > checkpoints[i + 1] * start)
        if stall is not None and i >= stall:
            stop = stop | (accepted <= i - stall)
        keep = (~stop).nonzero().squeeze(1)  # the one host sync per iteration
        if keep.numel() < index.numel():
            done = stop.nonzero().squeeze(1)
            _merge(best, objective, index[done], x[done], logits[done], labels[done])
            if keep.numel() == 0:
                return
            x, logits, margin, start, accepted, labels, seeds, index = (
                v.index_select(0, keep)
                for v in (x, logits, margin, start, accepted, labels, seeds, index)
            )
            region = region.select(keep)
        p = _p_selection(p_init, i, queries)
        candidate = proposer.propose(region, x, seeds, i + 1, p)
        new_logits = ev(candidate)
        new_margin = _margin(new_logits, labels, objective.targeted)
        # Gains below the rounding level are refused: they are noise, and the model's rounding
        # can change with the batch, which would then change the path of the search.
        tol = 16 * torch.finfo(logits.dtype).eps * logits.abs().amax(dim=1)
        accept = (new_margin < margin - tol) | objective.success(new_logits, labels)
        x = torch.where(accept.view(-1, *([1] * (x.ndim - 1))), candidate, x)
        logits = torch.where(accept.unsqueeze(1), new_logits, logits)
        margin = torch.where(accept, new_margin, margin)
        accepted = torch.where(accept, i + 1, accepted)
    _merge(best, objective, index, x, logits, labels)


def _merge(
    best: Candidates, objective: Objective, index: Tensor, x: Tensor, logits: Tensor, labels: Tensor
) -> None:
    """Keep, per row, the better of `best` and the Square point (the engine's ranking)."""
    local = best.select(index)
    local.update(x, logits, objective.loss(logits, labels), objective.success(logits, labels))
    best.put(index, local)


def _margin(logits: Tensor, labels: Tensor, targeted: bool) -> Tensor:
    """z_y - max_{i != y} z_i (targeted: max_{i != t} z_i - z_t); minimised, < 0 means success."""
    own = logits.gather(1, labels.unsqueeze(1)).squeeze(1)
    other = logits.scatter(1, labels.unsqueeze(1), -math.inf).amax(dim=1)
    return other - own if targeted else own - other


def _p_selection(p_init: float, i: int, queries: int) -> float:
    """The reference schedule: p halves after each of P_HALVINGS, i rescaled to 10000 queries."""
    return p_init / 2 ** bisect.bisect_left(P_HALVINGS, int(i / queries * 10000))


def _grid(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The (C, H, W) view of one input: (d,) -> (1, 1, d), (C, L) -> (C, 1, L)."""
    if len(shape) == 1:
        return 1, 1, shape[0]
    if len(shape) == 2:
        return shape[0], 1, shape[1]
    return math.prod(shape[:-2]), shape[-2], shape[-1]


def _example_seeds(n: int, generator: RandomSource, device: torch.device) -> Tensor:
    """One 48-bit seed per example from two float32 uniform draws of `generator`."""
    u = unit_noise(
        "uniform", "inf", (n, 2), generator=generator, device=device, dtype=torch.float32
    )
    parts = ((u + 1) * 2**23).long().clamp_(0, 2**24 - 1)  # [-1, 1) -> 24-bit integers
    return parts[:, 0] * 2**24 + parts[:, 1]


def _draw(seeds: Tensor, step: int, count: int) -> Tensor:
    """`count` non-negative 31-bit integers per row, a pure function of (seed, step, element)."""
    return (random_bits(step, seeds, (count,)) >> 32) & _POSITIVE_31


def _signs(bits: Tensor, dtype: torch.dtype) -> Tensor:
    return (bits & 1).to(dtype).mul_(2).sub_(1)


def _window_mask(top: Tensor, left: Tensor, size: tuple[int, int], h: int, w: int) -> Tensor:
    """(rows, 1, h, w) booleans: the size[0] x size[1] window at (top, left) of each row."""
    hs = torch.arange(h, device=top.device) - top.unsqueeze(1)
    ws = torch.arange(w, device=top.device) - left.unsqueeze(1)
    inside_h = (hs >= 0) & (hs < size[0])
    inside_w = (ws >= 0) & (ws < size[1])
    return (inside_h.unsqueeze(2) & inside_w.unsqueeze(1)).unsqueeze(1)


def _per_row(values: Tensor) -> Tensor:
    return values.view(-1, 1, 1, 1)


class _Linf:
    """Proposals for the L-inf ball."""

    def __init__(self, grid: tuple[int, int, int]) -> None:
        self.c, self.h, self.w = grid

    def start(self, seeds: Tensor, dtype: torch.dtype) -> Tensor:
        """Vertical stripes: one sign per (channel, column), unit L-inf norm."""
        signs = _signs(_draw(seeds, 0, self.c * self.w), dtype).view(-1, self.c, 1, self.w)
        return signs.expand(-1, -1, self.h, -1).contiguous()

    def propose(self, region: Region, x: Tensor, seeds: Tensor, step: int, p: float) -> Tensor:
        c, h, w = self.c, self.h, self.w
        size = _window_size(p, h, w, minimum=1, odd=False)
        bits = _draw(seeds, step, 2 + 2 * c)
        top = bits[:, 0] % _room(h, size[0])
        left = bits[:, 1] % _room(w, size[1])
        mask = _window_mask(top, left, size, h, w)
        signs = _signs(bits[:, 2 : 2 + c], x.dtype).view(-1, c, 1, 1)
        other = _signs(bits[:, 2 + c :], x.dtype).view(-1, c, 1, 1)
        # A redraw equal to the first signs is flipped, so the alternative always differs.
        same = (other == signs).all(dim=1, keepdim=True)
        other = torch.where(same, -signs, other)
        grid = x.reshape(-1, c, h, w)
        jump = mask * _per_row(2 * region.eps)

        def moved(s: Tensor) -> Tensor:
            return region.project(torch.addcmul(grid, jump, s).view_as(x))

        candidate = moved(signs)
        unchanged = (candidate == x).flatten(1).all(dim=1)
        return torch.where(unchanged.view(-1, *([1] * (x.ndim - 1))), moved(other), candidate)


class _L2:
    """Proposals for the L2 ball, after the reference implementation."""

    def __init__(self, grid: tuple[int, int, int]) -> None:
        self.c, self.h, self.w = grid
        self.bumps: dict[tuple[int, int], tuple[Tensor, Tensor]] = {}

    def _bumps(self, size: tuple[int, int], like: Tensor) -> tuple[Tensor, Tensor]:
        """The eta pattern of a window and its transposed variant, both of shape `size`."""
        if size not in self.bumps:
            a, b = size
            self.bumps[size] = (_eta(a, b, like), _eta(b, a, like).T.contiguous())
        return self.bumps[size]

    def _placed(
        self, size: tuple[int, int], top: Tensor, left: Tensor, flip: Tensor, like: Tensor
    ) -> Tensor:
        """(rows, 1, h, w): each row's eta pattern in its window (transposed where `flip`)."""
        plain, turned = self._bumps(size, like)
        hs = (torch.arange(self.h, device=top.device) - top.unsqueeze(1)).clamp(0, size[0] - 1)
        ws = (torch.arange(self.w, device=top.device) - left.unsqueeze(1)).clamp(0, size[1] - 1)
        hs, ws = hs.unsqueeze(2), ws.unsqueeze(1)
        values = torch.where(flip.view(-1, 1, 1), turned[hs, ws], plain[hs, ws])
        return values.unsqueeze(1) * _window_mask(top, left, size, self.h, self.w)

    def start(self, seeds: Tensor, dtype: torch.dtype) -> Tensor:
        """Bumps of side max(H // 5, 1) on a grid of tiles, one sign per (channel, tile)."""
        c, h, w = self.c, self.h, self.w
        tile = (1, max(w // 5, 1)) if h == 1 else (max(min(h, w) // 5, 1),) * 2
        (tiles_h, rel_h, in_h, count_h), (tiles_w, rel_w, in_w, count_w) = (
            _tile_axis(length, side, seeds.device)
            for length, side in zip((h, w), tile, strict=True)
        )
        counts = (count_h, count_w)
        tiles, rel, inside = (tiles_h, tiles_w), (rel_h, rel_w), (in_h, in_w)
        bits = _draw(seeds, 0, (c + 1) * counts[0] * counts[1]).view(-1, c + 1, *counts)
        signs = _signs(bits[:, :c], dtype)[:, :, tiles[0]][:, :, :, tiles[1]]
        flip = (bits[:, c] & 1).bool()[:, tiles[0]][:, :, tiles[1]]
        plain, turned = self._bumps(tile, torch.empty((), dtype=dtype, device=seeds.device))
        hs, ws = rel[0].unsqueeze(1), rel[1].unsqueeze(0)
        values = torch.where(flip, turned[hs, ws], plain[hs, ws])
        values = values * (inside[0].unsqueeze(1) & inside[1].unsqueeze(0))
        pattern = values.unsqueeze(1) * signs
        norms = torch.linalg.vector_norm(pattern.flatten(1), dim=1).clamp_min(1e-12)
        return pattern / _per_row(norms)

    def propose(self, region: Region, x: Tensor, seeds: Tensor, step: int, p: float) -> Tensor:
        c, h, w = self.c, self.h, self.w
        size = _window_size(p, h, w, minimum=3, odd=True)
        bits = _draw(seeds, step, 5 + c)
        tops = [bits[:, k] % _room(h, size[0]) for k in (0, 2)]
        lefts = [bits[:, k] % _room(w, size[1]) for k in (1, 3)]
        first = _window_mask(tops[0], lefts[0], size, h, w)
        second = _window_mask(tops[1], lefts[1], size, h, w)
        delta = (x - region.x0).reshape(-1, c, h, w)
        eps = _per_row(region.eps)

        def norm(t: Tensor, dims: tuple[int, ...]) -> Tensor:
            return torch.linalg.vector_norm(t, dim=dims, keepdim=True)

        window = delta * first
        total = norm(delta, (1, 2, 3))
        both = norm(delta * (first | second), (1, 2, 3))
        bump = self._placed(size, tops[0], lefts[0], (bits[:, 4] & 1).bool(), delta)
        new = bump * _signs(bits[:, 5:], x.dtype).view(-1, c, 1, 1)
        new = new + window / (norm(window, (2, 3)) + 1e-12)
        room = ((eps**2 - total**2).clamp_min(0) / c + both**2).sqrt()
        new = new / (norm(new, (2, 3)) + 1e-12) * room
        delta = torch.where(first, new, delta.masked_fill(second, 0.0))
        delta = delta * (eps / (norm(delta, (1, 2, 3)) + 1e-12))
        return region.project(region.x0 + delta.view_as(x))


def _tile_axis(length: int, side: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor, int]:
    """Per position along one axis: its tile, its offset in the tile and whether it is in one,
    for length // side tiles starting where the reference starts its 5 x 5 grid."""
    offsets = torch.arange(length, device=device) - max((length - 5 * side) // 2, 0)
    count = length // side
    tiles = (offsets.clamp(min=0) // side).clamp(max=count - 1)
    return tiles, offsets.remainder(side), (offsets >= 0) & (offsets // side < count), count


def _room(length: int, size: int) -> int:
    """Positions of a window along an axis: {0, ..., length - size}, as in the paper (the
    reference code's randint(0, length - size) leaves the last one out)."""
    return length - size + 1


def _window_size(p: float, h: int, w: int, *, minimum: int, odd: bool) -> tuple[int, int]:
    """The window covering about the fraction p of the grid: a square, or an interval if h is 1."""
    side = round(p * w) if h == 1 else round(math.sqrt(p * h * w))
    side = max(side, minimum)
    side += 1 if odd and side % 2 == 0 else 0
    return (1, min(side, w)) if h == 1 else (min(side, h, w),) * 2


def _eta(a: int, b: int, like: Tensor) -> Tensor:
    """The reference's a x b bump: +nested rectangles on the top half, - on the bottom half."""
    pattern = torch.cat([_rectangles(a // 2, b, like), -_rectangles(a - a // 2, b, like)])
    return pattern / pattern.norm().clamp_min(1e-12)


def _rectangles(a: int, b: int, like: Tensor) -> Tensor:
    """sum_k 1/(k+1)^2 over the centred rectangles of half-width k around each point."""
    levels = max(a // 2 + 1, b // 2 + 1)
    weights = 1.0 / torch.arange(1, levels + 1, dtype=like.dtype, device=like.device) ** 2
    tail = weights.flip(0).cumsum(0).flip(0)  # tail[d] = sum_{k >= d} weights[k]
    rows = (torch.arange(a, device=like.device) - a // 2).abs()
    cols = (torch.arange(b, device=like.device) - b // 2).abs()
    pattern = tail[torch.maximum(rows.unsqueeze(1), cols.unsqueeze(0))]
    return pattern / pattern.norm().clamp_min(1e-12)
