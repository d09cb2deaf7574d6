"""Shared test set-up."""

# pytester's in-process runs remove modules first imported during a run; torch cannot be
# imported twice in one process, so the heavy modules are imported once here, before any run.
import torchvision  # noqa: F401
