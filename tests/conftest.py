"""Shared test set-up."""

from collections.abc import Iterator

import pytest
import torch

# pytester's in-process runs remove modules first imported during a run; torch cannot be
# imported twice in one process, so the heavy modules are imported once here, before any run.
import torchvision  # noqa: F401


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch on one thread for the test: attack timings and float sums do not depend on how
    busy the machine is (and two xdist workers do not fight over two cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
