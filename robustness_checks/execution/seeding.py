"""Deterministic random generators derived from (seed, check name, example index)."""

from __future__ import annotations

import hashlib

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
