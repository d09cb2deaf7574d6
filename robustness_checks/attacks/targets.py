"""Which classes a targeted attack aims at: MALT's nearest linearised boundaries first."""

from __future__ import annotations

import torch
from torch import Tensor

from robustness_checks.attacks.evaluation import Evaluator
from robustness_checks.attacks.regions import NormName

DUAL_NORM = {"inf": 1.0, "2": 2.0, "1": float("inf")}


def malt_targets(ev: Evaluator, x: Tensor, labels: Tensor, count: int, norm: NormName) -> Tensor:
    """The `count` other classes whose boundary is nearest by a first-order estimate, nearest
    first: (count, n).

    MALT's targeting (Melamed et al., NeurIPS 2024): class t's distance is (z_y - z_t) /
    ||grad_x (z_y - z_t)||_q at the clean point, q the dual of the attack's norm, where the
    model is almost linear at the scale of eps. Clean-logit order ranks by the numerator alone;
    a class with a small gap but a flat gradient (far away) then takes a target's whole budget.
    One forward pass and one backward pass per class, over the rows of `x`, counted in `ev`.
    """
    with torch.enable_grad():
        inputs = x.detach().requires_grad_(True)
        logits = ev(inputs)
        classes = logits.shape[1]
        own = logits.gather(1, labels.unsqueeze(1)).squeeze(1)
        distance = torch.full((x.shape[0], classes), torch.inf, device=x.device)
        for target in range(classes):
            gap = own - logits[:, target]
            (grad,) = torch.autograd.grad(gap.sum(), inputs, retain_graph=target < classes - 1)
            ev.backward_passes += x.shape[0] * ev.per_input
            size = grad.flatten(1).norm(p=DUAL_NORM[norm], dim=1)
            distance[:, target] = (gap.detach() / size).nan_to_num(nan=torch.inf)
    distance.scatter_(1, labels.unsqueeze(1), torch.inf)  # never the true class
    return distance.topk(count, dim=1, largest=False).indices.T.contiguous()
