"""Whether torchrun started this process as one of several ranks (read without importing torch)."""

from __future__ import annotations

import os


def launched_by_torchrun() -> bool:
    """True when torchrun (or torch.distributed.run) started this process with several ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ
