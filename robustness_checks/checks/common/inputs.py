"""Which examples a per-input check studies (`inputs` or `indices`), and pixels kept for reports."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import torch
from pydantic import Field, model_validator

from robustness_checks.checks.common.thumbnails import thumbnail_rows
from robustness_checks.errors import RobustnessError
from robustness_checks.execution.context import CheckContext, check_logits
from robustness_checks.spec.schema import CheckSpec

SMALL_INPUT = 4096  # inputs up to this many values keep their pixels in `details` for reports
PICTURED_INPUT = 3 * 1024 * 1024  # larger ones keep a thumbnail up to this many values


class SelectsInputs(CheckSpec):
    """A check that studies a few examples: the first N correctly classified, or given indices."""

    default_inputs: ClassVar[int] = 10

    inputs: Annotated[int, Field(ge=1)] | None = Field(
        None, description="the first N correctly classified examples (default: the type's)"
    )
    indices: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, min_length=1, description="these examples instead"
    )

    @model_validator(mode="after")
    def _one_selection(self) -> SelectsInputs:
        if self.inputs is not None and self.indices is not None:
            raise ValueError("give inputs (first N correctly classified) or indices, not both")
        return self


@torch.inference_mode()
def selected_inputs(context: CheckContext, params: SelectsInputs) -> list[int]:
    """The example indices `params` selects: its `indices`, or the first `inputs` examples the
    model classifies correctly (found in batched forward passes that stop once enough are)."""
    count = len(context.examples)
    if params.indices is not None:
        outside = [i for i in params.indices if i >= count]
        if outside:
            raise RobustnessError(
                f"indices {outside} are outside the data's {count} examples (0 to {count - 1})"
            )
        return list(params.indices)
    wanted = params.inputs or params.default_inputs
    chosen: list[int] = []
    for part, x, y in context.examples.batches(context.device):
        logits = context.model(x)
        check_logits(logits, len(x))
        right = (logits.argmax(dim=1) == y).nonzero().flatten().cpu()
        chosen += [part.start + int(i) for i in right[: wanted - len(chosen)]]
        if len(chosen) >= wanted:
            break
    if not chosen:
        raise RobustnessError(
            "the model classifies none of the examples correctly; check the model and data "
            "(labels, preprocess), or give indices"
        )
    return chosen


def pixel_rows(x: torch.Tensor, perturbed: torch.Tensor) -> dict[str, Any]:
    """A small input's shape, values and perturbation for the report's pictures; a larger one's
    thumbnail (`thumbnails.thumbnail_rows`), up to PICTURED_INPUT values."""
    if x.numel() > SMALL_INPUT:
        return thumbnail_rows(x, perturbed) if x.numel() <= PICTURED_INPUT else {}
    return {
        "shape": list(x.shape),
        "input": [round(v, 5) for v in x.flatten().tolist()],
        "perturbation": [round(v, 5) for v in (perturbed - x).flatten().tolist()],
    }
