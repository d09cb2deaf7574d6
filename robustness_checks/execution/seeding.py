"""Deterministic random generators derived from (seed, check name, example index)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed that depends only on the base seed and the given keys."""
    text = "\x1f".join([str(seed), *map(str, keys)])
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def torch_generator(
    seed: int, *keys: object, device: torch.device | str = "cpu"
) -> torch.Generator:
    """A torch generator on `device` seeded from `derive_seed(seed, *keys)`."""
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(seed, *keys))
    return generator


def numpy_generator(seed: int, *keys: object) -> np.random.Generator:
    """A numpy generator seeded from `derive_seed(seed, *keys)`."""
    return np.random.default_rng(derive_seed(seed, *keys))


@contextmanager
def seeded_torch(seed: int | None, device: torch.device | str = "cpu") -> Iterator[None]:
    """torch's global generators (the CPU's and `device`'s) seeded with `seed` for the block and
    restored afterwards, so a model that draws from them (input noise, dropout left on) repeats
    its draws. None: no seeding, the global state is used and advanced as usual."""
    if seed is None:
        yield
        return
    device = torch.device(device)
    if device.type == "cpu":
        fork = torch.random.fork_rng(devices=[])
    else:
        index = device.index
        if index is None:
            index = torch.get_device_module(device.type).current_device()
        fork = torch.random.fork_rng(devices=[index], device_type=device.type)
    with fork:
        torch.manual_seed(seed)  # seeds every device's default generator too
        yield
