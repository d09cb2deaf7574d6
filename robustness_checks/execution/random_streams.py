"""Counter-based random numbers: each value is a pure function of (key, example index, element).

Draws therefore do not depend on batch size, on the order in which examples are processed, or on
how examples are split across processes, and they are generated on the device in one pass.
The mixing function is SplitMix64's finaliser applied in three rounds.
"""

from __future__ import annotations

import math

import torch

from robustness_checks.execution.seeding import derive_seed

_GOLDEN = 0x9E3779B97F4A7C15
_MUL_1 = 0xBF58476D1CE4E5B9
_MUL_2 = 0x94D049BB133111EB
_MASK_64 = (1 << 64) - 1


def _signed(value: int) -> int:
    """A 64-bit pattern as the int64 value torch stores for it."""
    value &= _MASK_64
    return value - (1 << 64) if value >= 1 << 63 else value


def _shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical (unsigned) right shift of int64 bit patterns."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _mix(x: torch.Tensor) -> torch.Tensor:
    # int64 multiplication wraps modulo 2**64 on every torch backend, as SplitMix64 needs.
    x = x + _signed(_GOLDEN)
    x = (x ^ _shift_right(x, 30)) * _signed(_MUL_1)
    x = (x ^ _shift_right(x, 27)) * _signed(_MUL_2)
    return x ^ _shift_right(x, 31)


def random_bits(key: int, indices: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """int64 bit patterns of shape (len(indices), *shape) for stream `key`."""
    count = math.prod(shape)
    device = indices.device
    elements = torch.arange(count, device=device, dtype=torch.int64).view(1, count)
    per_example = _mix(_mix(torch.full_like(indices, _signed(key))) + indices.long())
    bits = _mix(per_example.view(-1, 1) + elements)
    return bits.view(len(indices), *shape)


def uniform(
    key: int, indices: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Uniform [0, 1) values of shape (len(indices), *shape), 53 random bits each."""
    bits = _shift_right(random_bits(key, indices, shape), 11)
    return (bits.double() * 2.0**-53).to(dtype)


def normal(
    key: int, indices: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Standard normal values of shape (len(indices), *shape), by the Box-Muller transform."""
    count = math.prod(shape)
    pairs = (count + 1) // 2
    draws = uniform(key, indices, (2, pairs), torch.float64)
    radius = torch.sqrt(-2.0 * torch.log1p(-draws[:, 0]))  # 1 - u is in (0, 1]
    angle = 2.0 * math.pi * draws[:, 1]
    values = torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
    return values[:, :count].reshape(len(indices), *shape).to(dtype)


class ExampleStream:
    """Random draws for a batch of examples, each row a pure function of (key, example index).

    A drop-in for a torch.Generator where draws have one row per example (attack random starts):
    the values do not depend on batch size or on how examples are split across processes.
    Each call advances the stream, so successive draws (restarts) differ.
    """

    def __init__(self, key: int, indices: torch.Tensor) -> None:
        self.key = int(key)
        self.indices = indices.long()
        self.draws = 0

    @property
    def device(self) -> torch.device:
        return self.indices.device

    def _next_key(self, shape: tuple[int, ...]) -> int:
        if shape[0] != len(self.indices):
            raise ValueError(
                f"a draw of shape {shape} needs one row per example ({len(self.indices)})"
            )
        self.draws += 1
        return derive_seed(self.key, self.draws)

    def uniform(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """Uniform [0, 1) values of `shape`, row i belonging to example indices[i]."""
        return uniform(self._next_key(shape), self.indices, tuple(shape[1:]), dtype)

    def normal(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """Standard normal values of `shape`, row i belonging to example indices[i]."""
        return normal(self._next_key(shape), self.indices, tuple(shape[1:]), dtype)
