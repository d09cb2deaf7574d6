"""run_attack: FGSM, PGD, APGD and random-perturbation baselines for many eps in one call."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from robustness_checks.attacks.apgd import (
    apgd,
    make_objective,
    reduce_targets,
    row_labels,
    top_targets,
)
from robustness_checks.attacks.arguments import (
    as_eps_list,
    check_inputs,
    check_int,
    check_nonnegative,
)
from robustness_checks.attacks.candidates import Candidates
from robustness_checks.attacks.evaluation import Evaluator, KeptByLoss, eval_mode
from robustness_checks.attacks.expectation import DEFAULT_DRAWS, Expectation, Judged, judge
from robustness_checks.attacks.layout import MAX_CHUNK_ELEMENTS, Rows
from robustness_checks.attacks.pgd import pgd
from robustness_checks.attacks.regions import (
    NormName,
    RandomSource,
    parse_norm,
    unit_direction,
    unit_noise,
)
from robustness_checks.attacks.result import AttackResult
from robustness_checks.attacks.single_shot import single_shot
from robustness_checks.attacks.square import square
from robustness_checks.attacks.targets import malt_targets
from robustness_checks.errors import ModelOutputError

AttackMethod = Literal["fgsm", "pgd", "apgd", "square", "auto", "uniform", "gaussian"]
METHODS: tuple[str, ...] = get_args(AttackMethod)
AttackLoss = Literal["ce", "dlr"]
LOSSES: tuple[str, ...] = get_args(AttackLoss)


def run_attack(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    method: AttackMethod,
    eps: float | str | Sequence[float | str],
    norm: Literal["inf", 2] | float | str = "inf",
    steps: int = 10,
    step_size: float | None = None,
    rel_step_size: float = 2.5,
    restarts: int = 1,
    random_start: bool = True,
    early_stop: bool = False,
    targeted: int | Literal["least_likely"] | Tensor | None = None,
    loss: AttackLoss = "ce",
    queries: int = 5000,
    p_init: float | None = None,
    version: Literal["standard", "fast", "full", "rand"] = "standard",
    bounds: tuple[float, float] | None = (0.0, 1.0),
    generator: RandomSource = None,
    max_batch: int | None = None,
    eot: int | None = None,
    draws: int = DEFAULT_DRAWS,
    ranking: Literal["logits", "malt"] = "logits",
    retire: Sequence[tuple[int, float]] = (),
    stall: int | None = None,
) -> AttackResult:
    """Attack `model` on raw inputs `x` with labels `y` at every eps, in one batched run.

    Methods:
    - 'fgsm': one input gradient at x, then x + eps * sign(grad) (L-inf) or the fast gradient
      method x + eps * grad / ||grad||_2 (L2), for every eps. `steps`, `restarts` are unused.
    - 'pgd': `steps` projected steepest-ascent steps of `step_size` (default
      `rel_step_size * eps / steps`) along sign(grad) (L-inf) or grad / ||grad||_2 (L2), from a
      point drawn uniformly in the ball (or from x when `random_start` is False), `restarts`
      times (once without a random start, as restarts would retrace the same path).
    - 'apgd': Auto-PGD (Croce and Hein 2020), `steps` iterations from a random start (or x),
      `restarts` times: step 2 eps, halved per row at checkpoints when the loss stalls (then
      the iterate restarts from the row's highest-loss point), momentum 0.75. `step_size` must
      be None and `rel_step_size` is unused. Pass steps=100 (the paper's and AutoAttack's
      budget, and the YAML default for apgd); the default 10 here is PGD's.
    - 'square': the Square attack (Andriushchenko et al. 2020), gradient-free random search
      on the margin loss with at most `queries` model queries per row, square side from the
      area fraction `p_init` (None: 0.8 for L-inf, 0.1 for L2) halving on the paper's schedule;
      a row stops querying once it succeeds, whatever `early_stop`, and with `retire` or
      `stall` when it makes too little progress (see `attacks.square.square`). Loss 'ce' only
      (the result's `loss` is cross-entropy); `steps`, `restarts`, `random_start`, `step_size`
      are unused.
    - 'auto': per example the worst case over APGD-CE, APGD-T (targeted DLR) and Square, each
      run only on the examples still robust (`version` 'standard', the cheaper 'fast' or
      AutoAttack's complete budget 'full'; see
      `robustness_checks.attacks.auto.run_auto`, which gets norm, eps, bounds, generator,
      max_batch, eot and draws; the other options are unused). The result is an
      `AutoAttackResult`. Version 'rand' is AutoAttack's for random models: APGD-CE and
      APGD-DLR with expectation over `eot` (default 20) draws.
    - 'uniform': `restarts` draws uniform in the eps-ball.
    - 'gaussian': `restarts` Gaussian draws: L-inf, sigma = eps per coordinate, then clipped to
      the ball; L2, sigma = eps / sqrt(d) (so E||noise||^2 = eps^2 and E||noise|| ~ eps), then
      scaled back onto the ball where longer.

    Every point is projected to the eps-ball and to `bounds` (None: unbounded). The clean input
    is a candidate too, so per example and eps the result is the best point seen: an adversarial
    point before any other, then the one with the highest loss.
    targeted: a class index, a per-example tensor of classes, or 'least_likely' (the clean
    prediction's least likely class); the attack then minimises the loss to it and succeeds
    when the prediction equals it. For 'apgd' an int N means instead: attack each example toward
    each of the N classes of highest clean logit other than its label (APGD-T; AutoAttack's
    is loss='dlr', targeted=9 on 10 classes), all at once; per eps and example the result keeps
    a point predicted as its target if any target run found one, else the highest-loss point,
    and `targets` is then (len(eps), n): the target of each kept point (else (n,)).
    ranking: which N classes that is: 'logits' (highest clean logit) or 'malt' (nearest
    linearised boundary, MALT; one more forward pass and one backward pass per class).
    loss: 'ce' (cross-entropy; minus cross-entropy to the target when targeted) or 'dlr', the
    difference of logits ratio, invariant to scaling the logits: -(z_y - max_{i != y} z_i) /
    (z_pi1 - z_pi3), targeted -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2), pi sorting the
    logits decreasingly; it needs 3 classes (4 targeted) and a gradient attack (pgd, apgd).
    `loss` of the result is this objective at the kept point.
    early_stop: stop attacking an (eps, example) row as soon as it succeeds (its first
    adversarial point is kept), and skip rows already successful in later restarts or draws.
    generator: random source on x's device (None: torch's global one), or an ExampleStream whose
    draws depend on each example's index alone (then results do not depend on the batch).
    Draws are made per example, not per eps, so a list of eps gives the same points as
    separate calls.
    max_batch: most rows (eps x example pairs) evaluated in one batch; default: as many rows as
    hold 2**22 input elements, but at least len(x).
    eot: None for a deterministic model. For a random model (input noise, dropout left on,
    random transforms) the number of draws whose logits are averaged at every query of the
    attack (expectation over transformation, see `expectation.Expectation`; 1: one draw per
    query); points are then kept by loss alone (`early_stop` is ignored: a point that one lucky
    draw misclassifies is not broken), and `draws` fresh passes judge each kept point and each
    clean input (the result's `expected_accuracy`, `clean_expected_accuracy`).
    The model runs in eval mode for the call (its flags are restored afterwards); gradients come
    from torch.autograd.grad with respect to the input only.
    """
    if method not in METHODS:
        raise ValueError(f"unknown attack method {method!r}: use one of {', '.join(METHODS)}")
    if method == "auto":
        from robustness_checks.attacks.auto import run_auto

        return run_auto(
            model,
            x,
            y,
            eps=as_eps_list(eps),
            norm=norm,
            version=version,
            bounds=bounds,
            generator=generator,
            max_batch=max_batch,
            eot=eot,
            draws=draws,
        )
    if version == "rand":
        raise ValueError("version='rand' applies to method 'auto'; give eot for other methods")
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}: use one of {', '.join(LOSSES)}")
    if loss == "dlr" and method not in ("pgd", "apgd"):
        raise ValueError(f"loss='dlr' needs a multi-step gradient attack (pgd, apgd), not {method}")
    if method == "apgd" and step_size is not None:
        raise ValueError("apgd sets its own step sizes (2 eps, halved on stalls): omit step_size")
    top_n = method == "apgd" and isinstance(targeted, int) and not isinstance(targeted, bool)
    if ranking not in ("logits", "malt") or (ranking == "malt" and not top_n):
        raise ValueError("ranking='malt' orders the targets of apgd with targeted=N")
    if (retire or stall is not None) and method != "square":
        raise ValueError("retire and stall stop rows of the square attack")
    norm_name = parse_norm(norm)
    eps_values = as_eps_list(eps)
    check_int("steps", steps, 0)
    check_int("restarts", restarts, 1)
    check_int("queries", queries, 1)
    if p_init is not None and not 0.0 < p_init <= 1.0:
        raise ValueError(f"p_init must lie in (0, 1], got {p_init!r}")
    check_nonnegative("rel_step_size", rel_step_size)
    if step_size is not None:
        check_nonnegative("step_size", step_size)
    bounds = check_inputs(x, y, bounds, generator, max_batch)
    random_model = eot is not None
    if random_model:
        check_int("eot", eot, 1)
        check_int("draws", draws, 1)
        early_stop = False

    with eval_mode(model), torch.inference_mode(False):
        x = x.clone() if x.is_inference() else x.detach()
        y = y.to(device=x.device, dtype=torch.long)
        if bounds is not None and bool(((x < bounds[0]) | (x > bounds[1])).any()):
            raise ValueError(f"x has values outside bounds {bounds}")
        ev = Evaluator(Expectation(model, eot), eot) if random_model else Evaluator(model)
        n, count = x.shape[0], len(eps_values)

        leaf = x.clone().requires_grad_(True) if method == "fgsm" else x
        clean_logits = ev(leaf)
        objective = make_objective(loss, targeted is not None, clean_logits.shape[1])
        if random_model:
            objective = KeptByLoss(objective)
        if top_n and ranking == "malt":
            targets = malt_targets(ev, x, y, targeted, norm_name)  # (N, n)
        elif top_n:
            targets = top_targets(clean_logits.detach(), y, targeted)  # (N, n)
        elif targeted is not None:
            targets = _labels(y, targeted, clean_logits.detach()).unsqueeze(0)
        else:
            targets = None
        labels = row_labels(loss, y, targets, count)
        copies = labels.shape[0] // (count * n)
        # FGSM: the first rows are the examples, each once.
        clean_loss = objective.loss(clean_logits, labels[:n])
        grad = ev.input_gradient(clean_loss, leaf) if method == "fgsm" else None
        clean_logits = clean_logits.detach()
        if not bool(torch.isfinite(clean_logits).all()):
            raise ModelOutputError("the model returned non-finite logits on the clean inputs")

        # Rows: target-major, then eps-major, then examples.
        eps_rows = torch.tensor(eps_values, device=x.device, dtype=x.dtype)
        eps_rows = eps_rows.repeat_interleave(n).repeat(copies)
        if method == "apgd":
            step_rows = 2.0 * eps_rows
        elif step_size is not None:
            step_rows = torch.full_like(eps_rows, step_size)
        else:
            step_rows = eps_rows * (rel_step_size / max(steps, 1))
        per_example = max(1, math.prod(x.shape[1:])) * (eot or 1)
        chunk = max_batch or max(n, MAX_CHUNK_ELEMENTS // per_example)
        rows = Rows(x, eps_rows, labels, step_rows, norm_name, bounds, chunk)
        row_logits = clean_logits.repeat(copies * count, 1)
        best = Candidates(
            x.repeat(copies * count, *([1] * (x.ndim - 1))),
            row_logits,
            objective.loss(row_logits, labels),
            objective.success(row_logits, labels),
        )

        if method == "pgd":
            pgd(
                ev,
                objective,
                rows,
                best,
                steps=steps,
                # Without a random start every restart would retrace the same path.
                restarts=restarts if random_start else 1,
                random_start=random_start,
                early_stop=early_stop,
                generator=generator,
            )
        elif method == "apgd":
            apgd(
                ev,
                objective,
                rows,
                best,
                steps=steps,
                restarts=restarts,
                random_start=random_start,
                early_stop=early_stop,
                generator=generator,
                group=count * n,
            )
        elif method == "square":
            square(
                ev,
                objective,
                rows,
                best,
                queries=queries,
                p_init=p_init,
                generator=generator,
                retire=retire,
                stall=stall,
            )
        elif method == "fgsm":
            single_shot(
                ev, objective, rows, best, [unit_direction(grad, norm_name)], early_stop=False
            )
        else:
            noise = _draws(method, norm_name, x, restarts, generator)
            single_shot(ev, objective, rows, best, noise, early_stop=early_stop)

        kept_targets = None if targets is None else targets[0]
        if top_n:
            best, kept_targets = reduce_targets(best, targets)
            kept_targets = kept_targets.view(count, n)
        judged = Judged()
        if random_model:
            judged = judge(model, x, y, best.x.view(count, n, *x.shape[1:]), draws, max_batch)
    success = best.success.view(count, n)
    if random_model:
        success = judged.expected < 0.5
    return AttackResult(
        method=method,
        norm=norm_name,
        eps=eps_values,
        adversarial=best.x.view(count, n, *x.shape[1:]),
        logits=best.logits.view(count, n, -1),
        loss=best.loss.view(count, n),
        success=success,
        clean_logits=clean_logits,
        targets=kept_targets,
        forward_passes=ev.forward_passes + judged.forward_passes,
        backward_passes=ev.backward_passes,
        zero_gradients=ev.zero_gradients,
        gradient_examples=ev.gradient_examples,
        eot=eot,
        expected_accuracy=judged.expected,
        clean_expected_accuracy=judged.clean,
    )


def _draws(
    kind: str, norm: NormName, x: Tensor, restarts: int, generator: RandomSource
) -> Iterator[Tensor]:
    """`restarts` unit perturbations, drawn lazily so early stop never changes the random stream."""
    for _ in range(restarts):
        yield unit_noise(
            kind, norm, tuple(x.shape), generator=generator, device=x.device, dtype=x.dtype
        )


def _labels(y: Tensor, targeted: object, clean_logits: Tensor) -> Tensor:
    """The class each row is attacked away from (untargeted) or toward (targeted)."""
    classes = clean_logits.shape[1]
    if targeted is None:
        return y
    if isinstance(targeted, str):
        if targeted != "least_likely":
            raise ValueError(f"targeted must be a class, a tensor or 'least_likely': {targeted!r}")
        return clean_logits.argmin(dim=1)
    if isinstance(targeted, Tensor):
        target = targeted.to(device=y.device, dtype=torch.long)
        if target.shape != y.shape:
            raise ValueError(
                f"targeted must have shape {tuple(y.shape)}, got {tuple(target.shape)}"
            )
        if bool(((target < 0) | (target >= classes)).any()):
            raise ValueError(f"targeted classes must lie in [0, {classes})")
        return target
    if isinstance(targeted, int) and not isinstance(targeted, bool) and 0 <= targeted < classes:
        return torch.full_like(y, targeted)
    raise ValueError(f"targeted class must be an int in [0, {classes}), got {targeted!r}")
