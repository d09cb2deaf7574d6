"""Hypothesis strategies for input perturbations that shrink toward the identity, and their use."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor

Bounds = tuple[float, float] | None
Params = dict[str, float | int]

# Magnitudes are drawn as integers 0..LEVELS and scaled to the budget. Hypothesis shrinks an
# integer to the smallest failing value, but a float to the "simplest" one (0.25 before 0.2003),
# so a grid is what puts a shrunk magnitude next to a threshold: within budget / LEVELS of it.
LEVELS = 1000
SEEDS = 2**32 - 1

BUDGET_FIELDS: dict[str, str] = {
    "linf": "eps",
    "l2": "eps",
    "gaussian": "sigma",
    "brightness": "max",
    "contrast": "max",
    "translate": "max",
    "rotate": "max",
    "occlusion": "max",
}
KINDS: tuple[str, ...] = tuple(BUDGET_FIELDS)
BUDGET_MEANINGS: dict[str, str] = {
    "linf": "the largest L-inf norm of the noise",
    "l2": "the largest L2 norm of the noise",
    "gaussian": "the largest noise standard deviation",
    "brightness": "the largest shift added to every value",
    "contrast": "the largest change of the contrast factor from 1",
    "translate": "the largest shift in whole pixels along each axis",
    "rotate": "the largest rotation in degrees",
    "occlusion": "the largest side in whole pixels of the square patch",
}
OPTIONAL_FIELDS: dict[str, frozenset[str]] = {"occlusion": frozenset({"value"})}
PIXEL_KINDS = frozenset({"translate", "occlusion"})  # budgets in whole pixels
IMAGE_KINDS = frozenset({"translate", "rotate", "occlusion"})  # need (..., H, W) inputs


def check_budget(kind: str, budget: Mapping[str, Any]) -> dict[str, float]:
    """The budget of a perturbation `kind`, validated; ValueError says what is wrong."""
    if kind not in BUDGET_FIELDS:
        raise ValueError(f"unknown perturbation kind {kind!r}; known kinds: {', '.join(KINDS)}")
    field = BUDGET_FIELDS[kind]
    allowed = {field} | OPTIONAL_FIELDS.get(kind, frozenset())
    extra = sorted(set(budget) - allowed)
    if extra:
        raise ValueError(
            f"{kind} takes {' and '.join(sorted(allowed))}, not {', '.join(extra)} "
            f"({field}: {BUDGET_MEANINGS[kind]})"
        )
    if budget.get(field) is None:
        raise ValueError(f"{kind} needs {field}: {BUDGET_MEANINGS[kind]}")
    checked: dict[str, float] = {}
    for name, value in budget.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{kind} {name} must be a number, got {value!r}")
        checked[name] = float(value)
    limit = checked[field]
    if not limit >= 0 or limit == float("inf"):
        raise ValueError(f"{kind} {field} must be a finite number >= 0, got {limit:g}")
    if kind in PIXEL_KINDS and limit != int(limit):
        raise ValueError(f"{kind} {field} must be a whole number of pixels, got {limit:g}")
    return checked


@dataclass(frozen=True)
class Perturbation:
    """One perturbation with concrete parameters, applied the same way to every input."""

    kind: str
    params: Params

    def __hash__(self) -> int:
        return hash(self.key)

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.kind, *sorted(self.params.items()))

    @property
    def is_identity(self) -> bool:
        """Whether this perturbation leaves every input unchanged (before clipping)."""
        p = self.params
        if self.kind in ("linf", "l2", "gaussian"):
            return p["magnitude"] == 0
        if self.kind == "contrast":
            return p["factor"] == 1
        if self.kind == "translate":
            return p["dx"] == 0 and p["dy"] == 0
        if self.kind == "occlusion":
            return p["size"] == 0
        return p["delta" if self.kind == "brightness" else "angle"] == 0

    def apply(self, x: Tensor, bounds: Bounds) -> Tensor:
        """`x` (a batch, inputs along dim 0) perturbed and clipped to `bounds` (None: no clip)."""
        perturbed = x if self.is_identity else _APPLY[self.kind](x, self.params, bounds)
        return perturbed if bounds is None else perturbed.clamp(bounds[0], bounds[1])

    def describe(self) -> str:
        """A short readable form, e.g. 'brightness +0.2' or '3x3 patch at row 2, col 5'."""
        p = self.params
        if self.kind in ("linf", "l2"):
            name = "L-inf" if self.kind == "linf" else "L2"
            return f"{name} noise of norm {_num(p['magnitude'])} (seed {p['seed']})"
        if self.kind == "gaussian":
            return f"Gaussian noise sigma {_num(p['magnitude'])} (seed {p['seed']})"
        if self.kind == "brightness":
            return f"brightness {_signed_num(p['delta'])}"
        if self.kind == "contrast":
            return f"contrast x{_num(p['factor'])}"
        if self.kind == "translate":
            return f"shift by dx={_signed_num(p['dx'])}, dy={_signed_num(p['dy'])} px"
        if self.kind == "rotate":
            return f"rotation by {_signed_num(p['angle'])} degrees"
        fill = f" of value {_num(p['value'])}" if "value" in p else ""
        clipped = " (clipped to the image)" if min(p["top"], p["left"]) < 0 else ""
        where = f"at row {p['top']}, col {p['left']}{clipped}"
        return f"{p['size']}x{p['size']} patch{fill} {where}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": dict(self.params)}


def perturbations(
    kind: str, *, image_size: tuple[int, int] | None = None, **budget: float
) -> st.SearchStrategy[Perturbation]:
    """Perturbations of `kind` within `budget`, shrinking toward the identity.

    Budgets (see BUDGET_MEANINGS): linf/l2 `eps`, gaussian `sigma`, brightness/contrast/
    translate/rotate/occlusion `max`, occlusion also `value` (the fill; default: the lower
    bound, or 0 when unbounded). Occlusion needs `image_size=(height, width)`.
    """
    checked = check_budget(kind, budget)
    limit = checked[BUDGET_FIELDS[kind]]
    if kind in ("linf", "l2", "gaussian"):
        return st.builds(
            lambda m, s: Perturbation(kind, {"magnitude": m, "seed": s}),
            _magnitude(limit),
            st.integers(0, SEEDS),
        )
    if kind == "brightness":
        return _signed(limit).map(lambda d: Perturbation(kind, {"delta": d}))
    if kind == "contrast":
        return _signed(limit).map(lambda d: Perturbation(kind, {"factor": max(0.0, 1.0 + d)}))
    if kind == "rotate":
        return _signed(limit).map(lambda a: Perturbation(kind, {"angle": a}))
    if kind == "translate":
        shift = _signed_int(int(limit))
        return st.builds(lambda dx, dy: Perturbation(kind, {"dx": dx, "dy": dy}), shift, shift)
    if image_size is None:
        raise ValueError("occlusion needs image_size=(height, width) to place its patch")
    return _occlusion(int(limit), image_size, checked.get("value"))


def composition(
    specs: Sequence[Mapping[str, Any]], *, image_size: tuple[int, int] | None = None
) -> st.SearchStrategy[list[Perturbation]]:
    """Lists with one perturbation per spec, applied in order, each shrinking to the identity.

    `specs` is the YAML form: [{kind: brightness, max: 0.3}, {kind: linf, eps: 0.03}].
    """
    parts = []
    for spec in specs:
        budget = dict(spec)
        kind = budget.pop("kind", None)
        if kind is None:
            raise ValueError(f"perturbation {spec!r} has no kind; known kinds: {', '.join(KINDS)}")
        parts.append(perturbations(str(kind), image_size=image_size, **budget))
    return st.tuples(*parts).map(list)


def apply_all(perturbations: Sequence[Perturbation], x: Tensor, bounds: Bounds) -> Tensor:
    """`x` with every perturbation applied in order, clipped to `bounds` after each."""
    for perturbation in perturbations:
        x = perturbation.apply(x, bounds)
    return x


def describe_all(perturbations: Sequence[Perturbation]) -> str:
    """The perturbations that change the input, in order; 'no perturbation' if none does."""
    parts = [p.describe() for p in perturbations if not p.is_identity]
    return ", then ".join(parts) if parts else "no perturbation"


def _magnitude(limit: float) -> st.SearchStrategy[float]:
    if limit == 0:
        return st.just(0.0)
    return st.integers(0, LEVELS).map(lambda level: round(limit * level / LEVELS, 12))


def _signed(limit: float) -> st.SearchStrategy[float]:
    # Magnitude first, sign second: the magnitude shrinks to its smallest failing level and the
    # sign to +, so |value| goes to 0 whichever direction fails.
    return st.builds(lambda m, sign: m * sign + 0.0, _magnitude(limit), st.sampled_from((1, -1)))


def _signed_int(limit: int) -> st.SearchStrategy[int]:
    return st.builds(lambda m, sign: m * sign, st.integers(0, limit), st.sampled_from((1, -1)))


def _occlusion(
    limit: int, image_size: tuple[int, int], value: float | None
) -> st.SearchStrategy[Perturbation]:
    height, width = (int(v) for v in image_size)

    def build(size: int, bottom: int, right: int) -> Perturbation:
        # The patch is placed by its bottom-right pixel, so from any patch that covers a spot
        # both a smaller size and a smaller position keep covering it until they are minimal:
        # shrinking can reach the smallest covering patch one choice at a time. A patch may
        # stick out past the top or left edge (negative top / left); it is clipped there.
        params: Params = {"size": size, "top": bottom - size + 1, "left": right - size + 1}
        if value is not None:
            params["value"] = value
        return Perturbation("occlusion", params)

    return st.builds(
        build,
        st.integers(0, min(limit, height, width)),
        st.integers(0, height - 1),
        st.integers(0, width - 1),
    )


def _direction(seed: int, x: Tensor) -> Tensor:
    """Standard normal noise of one input's shape, the same on every device for a seed."""
    generator = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(tuple(x.shape[1:]), generator=generator, dtype=torch.float64)
    return noise.to(device=x.device, dtype=x.dtype)


def _linf(x: Tensor, p: Params, bounds: Bounds) -> Tensor:
    # A vertex of the L-inf ball: every value moves by exactly the magnitude.
    return x + p["magnitude"] * torch.sign(_direction(int(p["seed"]), x))


def _l2(x: Tensor, p: Params, bounds: Bounds) -> Tensor:
    noise = _direction(int(p["seed"]), x)
    return x + p["magnitude"] * noise / noise.norm().clamp_min(1e-12)


def _gaussian(x: Tensor, p: Params, bounds: Bounds) -> Tensor:
    return x + p["magnitude"] * _direction(int(p["seed"]), x)


def _brightness(x: Tensor, p: Params, bounds: Bounds) -> Tensor:
    return x + p["delta"]


def _contrast(x: Tensor, p: Params, bounds: Bounds) -> Tensor:
    mean = x.mean(dim=tuple(range(1, x.dim())), keepdim=True)
    return mean + p["factor"] * (x - mean)


def _fill(p: Params, bounds: Bounds) -> float:
    if "value" in p:
        return float(p["value"])
    return 0.0 if bounds is None else float(bounds[0])


def _translate(x: Tensor, p: Params, bounds: Bounds) -> Tensor:
    # torchvision is imported where it is used: importing it costs seconds (torch._dynamo),
    # which every spec parse and collection would otherwise pay.
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as tvf

    return tvf.affine(
        x,
        angle=0.0,
        translate=[int(p["dx"]), int(p["dy"])],
        scale=1.0,
        shear=[0.0, 0.0],
        interpolation=InterpolationMode.NEAREST,
        fill=_fill(p, bounds),
    )


def _rotate(x: Tensor, p: Params, bounds: Bounds) -> Tensor:
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as tvf

    return tvf.rotate(
        x, float(p["angle"]), interpolation=InterpolationMode.BILINEAR, fill=_fill(p, bounds)
    )


def _occlude(x: Tensor, p: Params, bounds: Bounds) -> Tensor:
    top, left, size = int(p["top"]), int(p["left"]), int(p["size"])
    out = x.clone()
    out[..., max(top, 0) : top + size, max(left, 0) : left + size] = _fill(p, bounds)
    return out


_APPLY: dict[str, Callable[[Tensor, Params, Bounds], Tensor]] = {
    "linf": _linf,
    "l2": _l2,
    "gaussian": _gaussian,
    "brightness": _brightness,
    "contrast": _contrast,
    "translate": _translate,
    "rotate": _rotate,
    "occlusion": _occlude,
}


def _num(value: float) -> str:
    return f"{value:.4g}"


def _signed_num(value: float) -> str:
    return f"{value:+.4g}"
