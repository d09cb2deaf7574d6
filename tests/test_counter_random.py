"""Counter-based random numbers: exact SplitMix64 bits, batch independence, distribution."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from robustness_checks.execution.random_streams import normal, random_bits, uniform

MASK = (1 << 64) - 1


def splitmix_finaliser(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def test_bits_match_a_pure_python_reference() -> None:
    key = 123456789
    indices = torch.tensor([0, 7, 2**40 + 3])
    bits = random_bits(key, indices, (5,))
    for row, index in enumerate(indices.tolist()):
        per_example = splitmix_finaliser((splitmix_finaliser(key) + index) & MASK)
        for element in range(5):
            expected = splitmix_finaliser((per_example + element) & MASK)
            assert bits[row, element].item() & MASK == expected


def test_draws_do_not_depend_on_batching_or_order() -> None:
    everything = uniform(5, torch.arange(100), (3, 4))
    pieces = torch.cat([uniform(5, torch.arange(i, i + 10), (3, 4)) for i in range(0, 100, 10)])
    assert torch.equal(everything, pieces)
    shuffled = torch.randperm(100, generator=torch.Generator().manual_seed(0))
    assert torch.equal(uniform(5, shuffled, (3, 4)), everything[shuffled])
    assert not torch.equal(uniform(6, torch.arange(100), (3, 4)), everything)


def test_uniform_and_normal_have_the_right_distribution() -> None:
    values = uniform(1, torch.arange(200), (500,)).double().flatten().numpy()
    assert values.min() >= 0 and values.max() < 1
    assert stats.kstest(values, "uniform").pvalue > 0.01
    gaussian = normal(2, torch.arange(200), (3, 7)).double().flatten().numpy()
    assert gaussian.shape == (200 * 21,)
    assert stats.kstest(gaussian, "norm").pvalue > 0.01
    assert abs(np.corrcoef(gaussian[:-1], gaussian[1:])[0, 1]) < 0.05


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_shape(dtype: torch.dtype) -> None:
    assert normal(0, torch.arange(4), (1, 8, 8), dtype).shape == (4, 1, 8, 8)
    assert normal(0, torch.arange(4), (1, 8, 8), dtype).dtype == dtype
