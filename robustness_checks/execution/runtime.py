"""A spec's loaded model, ensemble and examples, and the per-check contexts built from them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from robustness_checks.examples import Examples
from robustness_checks.execution.context import CheckContext
from robustness_checks.execution.distributed import local_device
from robustness_checks.execution.shared_passes import SharedPasses
from robustness_checks.fingerprints import (
    Fingerprints,
    combined_data_print,
    fingerprint_model,
    fingerprint_tensors,
)
from robustness_checks.loading.data import build_data
from robustness_checks.loading.device import choose_device
from robustness_checks.loading.models import build_ensemble, build_model
from robustness_checks.settings import (
    RunSettings,
    check_layer,
    measured_settings,
    resolve,
    settings_fingerprint,
    spec_layer,
)
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
    warnings: list[str] = field(default_factory=list)  # e.g. a device fallback, for every check
    _extra: dict[str, Examples] = field(default_factory=dict)
    _prints: dict[int, str] = field(default_factory=dict)  # by id() of the model or examples
    shared: SharedPasses = field(default_factory=SharedPasses)  # clean passes, computed once

    @classmethod
    def load(
        cls, document: SpecDocument, *, device: str | None = None, source: str = "device"
    ) -> SpecRuntime:
        """Load model, ensemble and data onto `device` (resolved from the run settings; `source`
        names where it came from in messages; None: the spec's)."""
        spec = document.spec
        target, note = choose_device(device or spec.device, field=source)
        if target.type == "cuda" and (own_gpu := local_device()) is not None:
            target = own_gpu  # one GPU per process under torchrun
        model = build_model(spec.model, document.base_dir).to(target)
        ensemble = [member.to(target) for member in build_ensemble(spec.model, document.base_dir)]
        examples = build_data(spec.data, document.base_dir)
        return cls(document, model, ensemble, examples, target, [note] if note else [])

    def context(self, check: CheckSpec, settings: RunSettings | None = None) -> CheckContext:
        """A fresh context (own evaluation counter, own seeds) for one check; `settings` default
        to the check's and the spec's own."""
        spec = self.document.spec
        if settings is None:
            settings = resolve([("check", check_layer(check)), ("spec", spec_layer(spec))])
        context = CheckContext.create(
            self.model,
            self.examples,
            self.device,
            check.name,
            seed=settings.seed,
            confidence=settings.confidence,
            bounds=spec.bounds,
            ensemble=self.ensemble,
            extra_data=self.extra_data(check),
            precision=spec.precision,
            channels_last=spec.channels_last,
        )
        context.decision = settings.decision
        context.shared = self.shared
        context.warnings.extend(self.warnings)
        return context

    def measured(self, check: CheckSpec, settings: RunSettings) -> dict[str, object]:
        """What the check measures with (its fields, run settings, the spec's numerics)."""
        spec = self.document.spec
        return measured_settings(
            check, settings, bounds=spec.bounds, precision=spec.precision, output=spec.model.output
        )

    def fingerprints(self, check: CheckSpec, settings: RunSettings) -> Fingerprints:
        """sha256 of the model's (and ensemble's) weights, of the check's data by content and of
        its settings; each print once per loaded object, and once per process for the same
        weights or tensors file (a spec moved with its files, or several specs on them)."""
        from robustness_checks.fingerprints import data_files_key, model_files_key

        spec, base = self.document.spec, self.document.base_dir
        sources = check_data_sources(check)
        extra = {
            name: self._print(
                found,
                lambda f=found: fingerprint_tensors(f.x, f.y),
                lambda s=sources[name]: data_files_key(s, base, labels=False),
            )
            for name, found in self.extra_data(check).items()
        }
        return Fingerprints(
            model=self._print(
                self.model,
                lambda: fingerprint_model(self.model, *self.ensemble),
                lambda: model_files_key(spec.model, base),
            ),
            data=combined_data_print(
                self._print(
                    self.examples,
                    lambda: fingerprint_tensors(*self._tensors()),
                    lambda: data_files_key(spec.data, base, labels=True),
                ),
                extra,
            ),
            check=settings_fingerprint(self.measured(check, settings)),
        )

    def _tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.examples.x, self.examples.y

    def _print(
        self, key: object, compute: Callable[[], str], files: Callable[[], object] = lambda: None
    ) -> str:
        """A fingerprint computed once per loaded object, and once per process for the same
        `files()` key (see fingerprints.print_by_files)."""
        from robustness_checks.fingerprints import print_by_files

        if id(key) not in self._prints:
            self._prints[id(key)] = print_by_files(files(), compute)
        return self._prints[id(key)]

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
