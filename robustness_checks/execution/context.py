"""`CheckContext`: everything a check function needs: model, examples, device, seeds, bounds."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from robustness_checks.checks.common.decision import Judging
from robustness_checks.details import ModelRandomness
from robustness_checks.errors import ModelOutputError
from robustness_checks.examples import Examples
from robustness_checks.execution.batching import AdaptiveBatches
from robustness_checks.execution.contracts import as_logits, check_labels, first_call, input_dtype
from robustness_checks.execution.distributed import (
    World,
    agree_on_failure,
    current_world,
    gather_batches,
)
from robustness_checks.execution.model_checks import check_models
from robustness_checks.execution.random_streams import ExampleStream
from robustness_checks.execution.randomness import PROBE_EXAMPLES, detect_randomness
from robustness_checks.execution.seeding import (
    derive_seed,
    numpy_generator,
    seeded_torch,
    torch_generator,
)
from robustness_checks.execution.shared_passes import Outputs, SharedPasses
from robustness_checks.execution.watch import CheckTimeout, Watch


class EvaluationCounter:
    """Counts forward passes over single inputs (a batch of b inputs counts b)."""

    def __init__(self) -> None:
        self.count = 0


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
Precision = Literal["fp32", "bf16", "fp16"]


class Counted(nn.Module):
    """Wraps a model: counts every forward pass into a shared counter and sets its numerics.

    With `precision` bf16 or fp16 the forward pass runs under autocast; logits come back as
    float32 either way, so every decision statistic is computed in float32 or float64. With
    `channels_last`, 4-d inputs are handed to the model in that memory format.
    """

    def __init__(
        self,
        model: nn.Module,
        counter: EvaluationCounter,
        *,
        precision: Precision = "fp32",
        channels_last: bool = False,
    ):
        super().__init__()
        self.model = model
        self.counter = counter
        self.autocast_dtype = PRECISIONS[precision]
        self.channels_last = channels_last
        self.input_dtype = None if self.autocast_dtype else input_dtype(model)
        self.labels: torch.Tensor | None = None  # checked against the classes on first use
        self.first = True
        self.watch: Watch | None = None  # the check's time limit and progress lines

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.counter.count += int(x.shape[0])
        if self.watch is not None:
            self.watch.tick(self.counter.count)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.input_dtype is not None:  # a float64 or half model: inputs in its dtype
            x = x.to(self.input_dtype)
        if not self.first:
            return as_logits(self._run(x), x.shape[0])
        logits = as_logits(first_call(self._run, x), x.shape[0])
        if self.labels is not None:
            check_labels(self.labels, logits.shape[1])
        self.first = False
        return logits

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if self.autocast_dtype is None:
            return self.model(x)
        with torch.autocast(x.device.type, dtype=self.autocast_dtype):
            return self.model(x)


def wants_channels_last(setting: bool | Literal["auto"], device: torch.device) -> bool:
    """`auto` uses channels_last on CUDA, where convolutions run fastest in it."""
    return device.type == "cuda" if setting == "auto" else bool(setting)


@dataclass
class CheckContext:
    """The model under test (counted, eval mode, on `device`) and its examples, for one check."""

    model: nn.Module
    examples: Examples
    device: torch.device
    check_name: str
    seed: int = 0
    confidence: float = 0.95
    bounds: tuple[float, float] | None = (0.0, 1.0)
    ensemble: list[nn.Module] = field(default_factory=list)
    decision: str = "point"  # point | strict | lenient: how value and interval meet a bound
    counter: EvaluationCounter = field(default_factory=EvaluationCounter)
    extra_data: dict[str, Examples] = field(default_factory=dict)  # e.g. ood_data
    warnings: list[str] = field(default_factory=list)  # reach the result's warnings
    world: World = field(default_factory=current_world)
    batch_sizes: dict[int, AdaptiveBatches] = field(default_factory=dict)
    randomness: ModelRandomness | None = None  # learnt before the check runs
    map_calls: int = 0  # map_examples calls so far: part of each batch's model seed
    shared: SharedPasses | None = None  # clean passes shared with the spec's other checks

    @classmethod
    def create(
        cls,
        model: nn.Module,
        examples: Examples,
        device: torch.device,
        check_name: str,
        *,
        seed: int = 0,
        confidence: float = 0.95,
        bounds: tuple[float, float] | None = (0.0, 1.0),
        ensemble: list[nn.Module] | None = None,
        extra_data: dict[str, Examples] | None = None,
        precision: Precision = "fp32",
        channels_last: bool | Literal["auto"] = "auto",
    ) -> CheckContext:
        """A context whose model and ensemble members are moved to `device`, put in eval mode,
        counted and given the `precision` and memory format."""
        counter = EvaluationCounter()
        last = wants_channels_last(channels_last, device)

        def prepare(module: nn.Module) -> Counted:
            module = module.to(device).eval()
            if last:
                module = module.to(memory_format=torch.channels_last)
            return Counted(module, counter, precision=precision, channels_last=last)

        counted = prepare(model)
        # The first forward pass checks the labels against the classes (ood_data's labels are
        # not classes of the model, so only the data's are checked).
        counted.labels = examples.y
        context = cls(
            model=counted,
            examples=examples,
            device=device,
            check_name=check_name,
            seed=seed,
            confidence=confidence,
            bounds=bounds,
            ensemble=[prepare(member) for member in ensemble or []],
            counter=counter,
            extra_data=dict(extra_data or {}),
        )
        # Layers still computing as in training (batch statistics, dropout): warnings now, and
        # from the check's first forward pass (no extra pass).
        check_models(context.model, context.ensemble, context.warnings)
        return context

    def learn_randomness(self, handling: str) -> ModelRandomness | None:
        """Whether the model is random, from two passes over the first examples (not counted in
        `evaluations`; the result's details.model_randomness records them); `handling` says what
        the check does about it."""
        if len(self.examples) == 0:
            return None
        counted = self.model if isinstance(self.model, Counted) else None
        before, watch = self.counter.count, counted.watch if counted is not None else None
        if counted is not None:
            counted.watch = None  # the probe is not the check's work: no time limit, no tick
        started = time.monotonic()
        try:
            x = self.examples.x[:PROBE_EXAMPLES].to(self.device)
            found = detect_randomness(self.model, x)
        except Exception:  # the check's own passes meet the fault and report it
            return None
        finally:
            self.counter.count = before
            if counted is not None:
                counted.watch = watch
            if watch is not None:
                watch.exclude(time.monotonic() - started)
        self.randomness = found.model_copy(update={"handling": handling})
        return self.randomness

    @property
    def random_model(self) -> bool:
        """Whether the model gave different outputs for the same inputs."""
        return self.randomness is not None and self.randomness.random

    def watch(self, watch: Watch) -> None:
        """Every forward pass of the model and ensemble looks at `watch` (timeout, progress)."""
        for module in [self.model, *self.ensemble]:
            if isinstance(module, Counted):
                module.watch = watch

    @property
    def judging(self) -> Judging:
        """The confidence level and decision rule that turn this check's statistics into an
        outcome."""
        return Judging(self.confidence, self.decision)  # type: ignore[arg-type]

    @property
    def evaluations(self) -> int:
        return self.counter.count

    def generator(self, *keys: object) -> torch.Generator:
        """A torch generator on the device, seeded from (seed, check name, *keys)."""
        return torch_generator(self.seed, self.check_name, *keys, device=self.device)

    def numpy_rng(self, *keys: object) -> np.random.Generator:
        """A numpy generator seeded from (seed, check name, *keys)."""
        return numpy_generator(self.seed, self.check_name, *keys)

    def example_stream(self, name: str, indices: torch.Tensor) -> ExampleStream:
        """Per-example random draws for examples `indices`, seeded from (seed, check, name)."""
        key = derive_seed(self.seed, self.check_name, name)
        return ExampleStream(key, indices.to(self.device))

    def map_examples(
        self,
        work: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], dict[str, Any]],
        examples: Examples | None = None,
        order: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """work(indices, x, y) over batches of every example, joined in example order.

        `work` gets a batch's example indices (on the CPU), and its inputs and labels on the
        device, and returns a dict of tensors (concatenated along their first dimension) and
        lists. Under
        torch.distributed each process works through its own block of examples and every
        process gets everything back. A batch that runs out of memory is retried in halves.
        If any process fails, every process raises, so none waits for the others forever.
        `order` (example indices) takes only those examples, in that order; `work` still gets
        their own indices, so per-example random draws are those of a full run.
        """
        examples = self.examples if examples is None else examples
        batches = self.batch_sizes.setdefault(
            id(examples), AdaptiveBatches(examples.batch_size, f"check {self.check_name!r}")
        )

        self.map_calls += 1
        call = self.map_calls

        def run(positions: range) -> dict[str, Any]:
            if order is None:
                part: slice | torch.Tensor = slice(positions.start, positions.stop)
                indices = torch.arange(positions.start, positions.stop)
            else:
                part = indices = order[positions.start : positions.stop]
            # A random model draws the same numbers for a batch whichever process runs it.
            seed = derive_seed(self.seed, self.check_name, "model", call, positions.start)
            with seeded_torch(seed, self.device):
                out = work(
                    indices,
                    examples.x[part].to(self.device, non_blocking=True),
                    examples.y[part].to(self.device, non_blocking=True),
                )
            if watch is not None:
                watch.examples(watch.done + len(positions), watch.total)
            return out

        outputs: list[dict[str, Any]] = []
        failure: Exception | None = None
        count = len(examples) if order is None else len(order)
        shard = self.world.shard(count)
        watch = getattr(self.model, "watch", None)
        if watch is not None:
            watch.begin_pass(len(shard))
        try:
            outputs = batches.run(shard, run, outputs)
        except Exception as error:
            failure = error
            if isinstance(error, CheckTimeout) and outputs and not self.world.distributed:
                error.finished = gather_batches(outputs, self.world)
        agree_on_failure(failure, self.world)
        return gather_batches(outputs, self.world)

    def logits(self, examples: Examples | None = None) -> torch.Tensor:
        """Logits of the model on every example, gathered on the CPU as float32 (shared with
        the spec's other checks when the model is deterministic)."""
        examples = self.examples if examples is None else examples

        @torch.inference_mode()
        def work(_: torch.Tensor, x: torch.Tensor, __: torch.Tensor) -> dict[str, Any]:
            return {"logits": self.model(x).float()}

        def compute() -> Outputs:
            logits = self.map_examples(work, examples)["logits"]
            check_logits(logits, len(examples))
            return {"logits": logits}

        return self.clean_pass("logits", examples, compute)["logits"]

    def clean_pass(
        self, what: object, examples: Examples, compute: Callable[[], Outputs]
    ) -> Outputs:
        """`compute()`'s per-example outputs for `examples`, taken from (and given to) the
        spec's shared passes when there are any and the model is known to be deterministic."""
        if self.shared is None or self.randomness is None or self.randomness.random:
            return compute()
        return self.shared.get(what, examples.x, compute)


def check_logits(logits: torch.Tensor, count: int) -> None:
    """Raise `ModelOutputError` unless `logits` is a finite (count, classes) matrix."""
    if logits.dim() != 2 or logits.shape[0] != count:
        raise ModelOutputError(
            f"the model returned shape {tuple(logits.shape)} for {count} inputs; a classifier must "
            "return logits of shape (batch, classes)"
        )
    finite = torch.isfinite(logits).all(dim=1)
    if not bool(finite.all()):
        bad = (~finite).nonzero().flatten()
        raise ModelOutputError(
            f"the model returned NaN or infinite logits for {bad.numel()} of {count} inputs "
            f"(first at index {int(bad[0])})"
        )
