"""A spec's loaded model, ensemble and examples, and the per-check contexts built from them."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from robustness_checks.examples import Examples
from robustness_checks.execution.context import CheckContext
from robustness_checks.execution.distributed import local_device
from robustness_checks.loading.data import build_data
from robustness_checks.loading.device import choose_device
from robustness_checks.loading.models import build_ensemble, build_model
from robustness_checks.spec.parse import SpecDocument
from robustness_checks.spec.schema import CheckSpec, DataSpec


@dataclass
class SpecRuntime:
    """What a spec loads once and shares between its checks."""

    document: SpecDocument
    model: nn.Module
    ensemble: list[nn.Module]
    examples: Examples
    device: torch.device
    seed: int
    warnings: list[str] = field(default_factory=list)  # e.g. a device fallback, for every check
    decision: str | None = None  # --robustness-decision: overrides check and spec
    default_decision: str = "point"  # the ini option robustness_decision
    _extra: dict[str, Examples] = field(default_factory=dict)
    _fingerprints: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(
        cls, document: SpecDocument, *, device: str | None = None, seed: int | None = None
    ) -> SpecRuntime:
        """Load model, ensemble and data; `device` and `seed` override the spec's."""
        spec = document.spec
        source = "--robustness-device" if device else "device"
        target, note = choose_device(device or spec.device, field=source)
        if target.type == "cuda" and (own_gpu := local_device()) is not None:
            target = own_gpu  # one GPU per process under torchrun
        model = build_model(spec.model, document.base_dir).to(target)
        ensemble = [member.to(target) for member in build_ensemble(spec.model, document.base_dir)]
        examples = build_data(spec.data, document.base_dir)
        seed = spec.seed if seed is None else seed
        return cls(document, model, ensemble, examples, target, seed, [note] if note else [])

    def context(self, check: CheckSpec) -> CheckContext:
        """A fresh context (own evaluation counter, own seeds) for one check."""
        spec = self.document.spec
        context = CheckContext.create(
            self.model,
            self.examples,
            self.device,
            check.name,
            seed=self.seed,
            confidence=check.confidence or spec.confidence,
            bounds=spec.bounds,
            ensemble=self.ensemble,
            extra_data=self.extra_data(check),
            precision=spec.precision,
            channels_last=spec.channels_last,
        )
        context.decision = self.decision or check.decision or spec.decision or self.default_decision
        context.warnings.extend(self.warnings)
        return context

    def fingerprints(self) -> dict[str, str]:
        """sha256 of the model's (and ensemble's) weights and of the data, computed once."""
        if not self._fingerprints:
            import hashlib

            from robustness_checks.gating.baseline import fingerprint_model, fingerprint_tensors

            weights = "".join(fingerprint_model(m) for m in [self.model, *self.ensemble])
            self._fingerprints = {
                "model": hashlib.sha256(weights.encode()).hexdigest(),
                "data": fingerprint_tensors(self.examples.x, self.examples.y),
            }
        return self._fingerprints

    def extra_data(self, check: CheckSpec) -> dict[str, Examples]:
        """The check's own data sources (such as ood_data), each loaded once per spec."""
        loaded = {}
        for name, value in check_data_sources(check).items():
            key = value.model_dump_json()
            if key not in self._extra:
                self._extra[key] = build_data(value, self.document.base_dir, labels=False)
            loaded[name] = self._extra[key]
        return loaded


def check_data_sources(check: CheckSpec) -> dict[str, DataSpec]:
    """The fields of a check that name a data source of their own."""
    return {
        name: value
        for name in type(check).model_fields
        if isinstance(value := getattr(check, name), DataSpec)
    }
