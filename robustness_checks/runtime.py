"""A spec's loaded model, ensemble and examples, and the per-check contexts built from them."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robustness_checks.context import CheckContext
from robustness_checks.examples import Examples
from robustness_checks.loading.data import build_data
from robustness_checks.loading.device import resolve_device
from robustness_checks.loading.models import build_ensemble, build_model
from robustness_checks.spec.parse import SpecDocument
from robustness_checks.spec.schema import CheckSpec


@dataclass
class SpecRuntime:
    """What a spec loads once and shares between its checks."""

    document: SpecDocument
    model: nn.Module
    ensemble: list[nn.Module]
    examples: Examples
    device: torch.device
    seed: int

    @classmethod
    def load(
        cls, document: SpecDocument, *, device: str | None = None, seed: int | None = None
    ) -> SpecRuntime:
        """Load model, ensemble and data; `device` and `seed` override the spec's."""
        spec = document.spec
        target = resolve_device(device or spec.device)
        model = build_model(spec.model, document.base_dir).to(target)
        ensemble = [member.to(target) for member in build_ensemble(spec.model, document.base_dir)]
        examples = build_data(spec.data, document.base_dir)
        return cls(document, model, ensemble, examples, target, spec.seed if seed is None else seed)

    def context(self, check: CheckSpec) -> CheckContext:
        """A fresh context (own evaluation counter, own seeds) for one check."""
        spec = self.document.spec
        return CheckContext.create(
            self.model,
            self.examples,
            self.device,
            check.name,
            seed=self.seed,
            confidence=check.confidence or spec.confidence,
            bounds=spec.bounds,
            ensemble=self.ensemble,
        )
