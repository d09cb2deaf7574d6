"""Classification margin of a model under standardized Gaussian noise, batched and chunked."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustness_checks.execution.batching import AdaptiveBatches

# Elements of the model input per forward pass: keeps memory bounded for large inputs.
MAX_CHUNK_ELEMENTS = 1 << 24


class MarginOracle:
    """Evaluates margin(u) = z_label - max_{j != label} z_j at x + sigma * u, counting passes.

    Noise is handled in standardized units u ~ N(0, I) flattened to (n, dim). A draw fails when
    the margin is <= 0, i.e. when the label is not the unique top logit (a tie counts as a
    failure). A draw whose logits are not all finite (NaN or +-inf) has no prediction: its
    margin is +inf, so it is never a failure, and `nonfinite` counts such draws among the
    `draws` evaluated (see `NoiseEstimate.nonfinite`). With `bounds`, the noisy input is
    clipped to them before the model sees it.
    """

    def __init__(
        self,
        model: nn.Module,
        x: Tensor,
        label: int,
        sigma: float,
        *,
        bounds: tuple[float, float] | None = None,
        batch_size: int = 1024,
        max_chunk_elements: int = MAX_CHUNK_ELEMENTS,
    ) -> None:
        self.model = model
        self.x = x.detach()
        self.shape = tuple(x.shape)
        self.dim = x.numel()
        self.label = int(label)
        self.sigma = float(sigma)
        self.bounds = bounds
        chunk = max(1, min(int(batch_size), max_chunk_elements // max(1, self.dim)))
        self.batches = AdaptiveBatches(chunk, "noise sampling")
        self.evaluations = 0
        self.draws = 0
        self._nonfinite = torch.zeros((), dtype=torch.int64, device=x.device)
        self._num_classes: int | None = None

    @property
    def chunk(self) -> int:
        """Draws per forward pass (halved for good after an out-of-memory error)."""
        return self.batches.batch_size

    @property
    def nonfinite(self) -> int:
        """Draws so far (of `draws`) at which the model's logits were not all finite."""
        return int(self._nonfinite)

    @property
    def device(self) -> torch.device:
        return self.x.device

    @property
    def dtype(self) -> torch.dtype:
        return self.x.dtype if self.x.is_floating_point() else torch.float32

    def chunk_sizes(self, count: int) -> list[int]:
        """Sizes of the forward passes that `count` draws are split into."""
        full, rest = divmod(int(count), self.chunk)
        return [self.chunk] * full + ([rest] if rest else [])

    def _inputs(self, noise: Tensor) -> Tensor:
        inputs = self.x + self.sigma * noise.reshape(-1, *self.shape)
        if self.bounds is not None:
            inputs = inputs.clamp(self.bounds[0], self.bounds[1])
        return inputs

    def _margin(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        if logits.dim() != 2 or not 0 <= self.label < logits.shape[1]:
            raise ValueError(
                f"the model must return logits of shape (batch, classes) with label "
                f"{self.label} among the classes; got shape {tuple(logits.shape)}"
            )
        own = logits[:, self.label]
        others = logits.clone()
        others[:, self.label] = -torch.inf
        best, winner = others.max(dim=1)
        finite = torch.isfinite(logits).all(dim=1)
        margin = torch.where(finite, (own - best).float(), torch.inf)
        return margin, winner

    def _counted_margin(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        self._nonfinite += (~torch.isfinite(logits).all(dim=1)).sum()
        return self._margin(logits)

    def evaluate(self, noise: Tensor) -> tuple[Tensor, Tensor]:
        """Margins (n,) float32 and the strongest other class (n,) for noise of shape (n, dim)."""

        @torch.no_grad()
        def margins(rows: range) -> tuple[Tensor, Tensor]:
            return self._counted_margin(self.model(self._inputs(noise[rows.start : rows.stop])))

        parts = self.batches.run(range(noise.shape[0]), margins)
        self.evaluations += noise.shape[0]
        self.draws += noise.shape[0]
        return torch.cat([m for m, _ in parts]), torch.cat([w for _, w in parts])

    def gradients(self, noise: Tensor) -> Tensor:
        """Gradients (n, dim) of the margin with respect to the standardized noise."""

        def gradient(rows: range) -> Tensor:
            with torch.enable_grad():
                u = noise[rows.start : rows.stop].detach().clone().requires_grad_(True)
                margin, _ = self._margin(self.model(self._inputs(u)))
                (grad,) = torch.autograd.grad(margin.clamp(min=-1e30).sum(), u)
            return grad.detach()

        grads = self.batches.run(range(noise.shape[0]), gradient)
        self.evaluations += noise.shape[0]
        return torch.cat(grads)

    @property
    def num_classes(self) -> int:
        """Number of logits, from one forward pass at the clean input (counted)."""
        if self._num_classes is None:
            with torch.no_grad():
                logits = self.model(self._inputs(torch.zeros_like(self.x)[None]))
            self.evaluations += 1
            self._num_classes = int(logits.shape[-1])
        return self._num_classes

    def pairwise(self, noise: Tensor, classes: Tensor) -> tuple[Tensor, Tensor]:
        """z_label - z_c (n,) and its gradient (n, dim) with respect to u, class c per row."""

        def one(rows: range) -> tuple[Tensor, Tensor]:
            with torch.enable_grad():
                u = noise[rows.start : rows.stop].detach().clone().requires_grad_(True)
                logits = self.model(self._inputs(u))
                rivals = classes[rows.start : rows.stop, None]
                g = logits[:, self.label] - logits.gather(1, rivals)[:, 0]
                (grad,) = torch.autograd.grad(g.sum(), u)
            return g.detach().float(), grad.detach()

        parts = self.batches.run(range(noise.shape[0]), one)
        self.evaluations += noise.shape[0]
        return torch.cat([g for g, _ in parts]), torch.cat([d for _, d in parts])
