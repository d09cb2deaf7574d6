"""Fitting and scoring time of the feature-based OOD detectors against pytorch-ood's, per 1,000."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from robustness_checks.uncertainty import detectors

FIT, QUERIES, SIZE, CLASSES, K, VIM_DIM = 10_000, 2_000, 512, 10, 50, 256


@dataclass
class Case:
    """Post-ReLU Gaussian class clusters (ResNet-18-sized features) and a linear head."""

    fit: Tensor
    labels: Tensor
    queries: Tensor
    head: nn.Linear
    rows: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)

    @property
    def rounds(self) -> int:
        return int(os.environ.get("BENCH_OOD_ROUNDS", 5))

    @property
    def weight(self) -> Tensor:
        return self.head.weight.detach()

    @property
    def bias(self) -> Tensor:
        return self.head.bias.detach()


def make_case() -> Case:
    generator = torch.Generator().manual_seed(0)
    means = torch.randn(CLASSES, SIZE, generator=generator)
    labels = torch.arange(FIT) % CLASSES
    fit = (means[labels] + torch.randn(FIT, SIZE, generator=generator)).relu()
    queries = (1.5 * torch.randn(QUERIES, SIZE, generator=generator)).relu()
    torch.manual_seed(0)
    return Case(fit, labels, queries, nn.Linear(SIZE, CLASSES))


def _ood() -> Any:
    return pytest.importorskip("pytorch_ood.detector")


def _ours(case: Case) -> dict[str, tuple[Callable[[], Any], Callable[[Any], Tensor]]]:
    w, b = case.weight.double(), case.bias.double()
    logits = case.queries @ case.weight.T + case.bias
    return {
        "mahalanobis": (
            lambda: detectors.fit_gaussians(case.fit, case.labels),
            lambda m: detectors.mahalanobis_score(m, case.queries),
        ),
        "relative_mahalanobis": (
            lambda: (
                detectors.fit_gaussians(case.fit, case.labels),
                detectors.fit_background(case.fit),
            ),
            lambda fitted: detectors.relative_mahalanobis_score(*fitted, case.queries),
        ),
        "knn": (
            lambda: detectors.normalised(case.fit),
            lambda bank: detectors.knn_score(bank, case.queries, K),
        ),
        "vim": (
            lambda: detectors.fit_vim(case.fit, w, b, VIM_DIM),
            lambda m: detectors.vim_score(m, case.queries, w, b),
        ),
        "react": (
            lambda: detectors.react_threshold(case.fit, 90.0),
            lambda t: detectors.react_score(case.queries, w, b, t),
        ),
        "ash": (lambda: None, lambda _: detectors.ash_score(case.queries, w, b, 65.0)),
        "max_logit": (lambda: None, lambda _: detectors.max_logit_score(logits)),
    }


def _theirs(case: Case) -> dict[str, tuple[Callable[[], Any], Callable[[Any], Tensor]]]:
    ood = _ood()
    logits = case.queries @ case.weight.T + case.bias
    maps = case.queries[:, :, None, None]
    ash = ood.ASH(nn.Identity(), nn.Sequential(nn.Flatten(), case.head), percentile=0.65)
    return {
        "mahalanobis": (
            lambda: ood.Mahalanobis(None).fit_features(case.fit, case.labels),
            lambda d: d.predict_features(case.queries),
        ),
        "relative_mahalanobis": (
            lambda: ood.RMD(None).fit_features(case.fit, case.labels),
            lambda d: d.predict_features(case.queries),
        ),
        "knn": (
            lambda: ood.KNN(None, k=K).fit_features(case.fit, case.labels),
            lambda d: d.predict_features(case.queries),
        ),
        "vim": (
            lambda: ood.ViM(None, d=VIM_DIM, w=case.weight, b=case.bias).fit_features(
                case.fit, case.labels
            ),
            lambda d: d.predict_features(case.queries),
        ),
        "react": (
            lambda: ood.ReAct(nn.Identity(), case.head, percentile=0.9).fit_feature_maps(
                case.fit, case.labels
            ),
            lambda d: d.predict_feature_maps(case.queries),
        ),
        "ash": (lambda: ash, lambda d: d.predict_feature_maps(maps)),
        "max_logit": (lambda: None, lambda _: ood.MaxLogit.score(logits)),
    }


@pytest.fixture(scope="module")
def case(request: pytest.FixtureRequest) -> Iterator[Case]:
    made = make_case()
    yield made
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is None or capture is None or not made.rows:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(
            f"fit {FIT} x {SIZE} features, {CLASSES} classes; score {QUERIES}; "
            f"{made.rounds} rounds, {torch.get_num_threads()} threads; min ms per 1,000 examples:"
        )
        reporter.write_line(f"  {'detector':<22} {'phase':<6} {'ours':>9} {'pytorch-ood':>12}")
        for (detector, phase), times in sorted(made.rows.items()):
            theirs = times.get("pytorch-ood")
            shown = "-" if theirs is None else f"{theirs:.3f}"
            reporter.write_line(
                f"  {detector:<22} {phase:<6} {times.get('ours', float('nan')):>9.3f} {shown:>12}"
            )


DETECTORS = ["mahalanobis", "relative_mahalanobis", "knn", "vim", "react", "ash", "max_logit"]


@pytest.mark.parametrize("side", ["ours", "pytorch-ood"])
@pytest.mark.parametrize("phase", ["fit", "score"])
@pytest.mark.parametrize("detector", DETECTORS)
def test_detector_speed(benchmark, case: Case, detector: str, phase: str, side: str) -> None:
    if phase == "fit" and detector in ("ash", "max_logit"):
        pytest.skip("nothing to fit")
    fit, score = (_ours if side == "ours" else _theirs)(case)[detector]
    benchmark.group = f"{detector}-{phase}"
    if phase == "fit":
        benchmark.pedantic(fit, rounds=case.rounds, warmup_rounds=1)
        per = FIT / 1000
    else:
        fitted = fit()
        values = benchmark.pedantic(score, args=(fitted,), rounds=case.rounds, warmup_rounds=1)
        assert values.shape == (QUERIES,)
        per = QUERIES / 1000
    milliseconds = 1000 * min(benchmark.stats.stats.data) / per
    case.rows.setdefault((detector, phase), {})[side] = milliseconds
    benchmark.extra_info.update({"ms_per_1000": milliseconds, "threads": torch.get_num_threads()})
