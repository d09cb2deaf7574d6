"""A spec's checks share clean forward passes of a deterministic model; random models never do."""

from __future__ import annotations

from pathlib import Path

import torch

from robustness_checks.checks.runner import execute
from robustness_checks.execution.runtime import SpecRuntime
from robustness_checks.execution.shared_passes import SharedPasses
from robustness_checks.spec.parse import load_spec

CHECKS = """checks:
  - {name: ece, type: calibration, metric: ece, max: 1.0, bootstrap: 10}
  - {name: ece-first-30, type: calibration, metric: ece, max: 1.0, bootstrap: 10, limit: 30}
  - {name: abstain, type: selective, score: confidence, coverage: 0.5, min_accuracy: 0.0}
  - {name: errors, type: failure_prediction, score: entropy, metric: auroc, min: 0.0}
  - name: energy
    type: ood
    ood_data: {factory: robustness_checks.demo.digits:noise_images, kwargs: {count: 40}}
    score: energy
    min: 0.0
  - name: knn
    type: ood
    ood_data: {factory: robustness_checks.demo.digits:noise_images, kwargs: {count: 40}}
    fit_data: {factory: robustness_checks.demo.digits:test_set, kwargs: {limit: 100}}
    score: knn
    k: 5
    min: 0.0
  - name: knn-again
    type: ood
    ood_data: {factory: robustness_checks.demo.digits:noise_images, kwargs: {count: 40}}
    fit_data: {factory: robustness_checks.demo.digits:test_set, kwargs: {limit: 100}}
    score: knn
    k: 5
    min: 0.0
"""


def _spec(tmp_path: Path, factory: str) -> Path:
    spec = tmp_path / "shared.robustness.yaml"
    spec.write_text(
        f"model: {{factory: {factory}}}\n"
        "data: {factory: robustness_checks.demo.digits:test_set, kwargs: {limit: 100}}\n"
        "bounds: null\n" + CHECKS
    )
    return spec


def _run(spec: Path, share: bool) -> dict[str, tuple[float, int]]:
    """(value, evaluations) per check, with the spec's shared passes or without any."""
    document = load_spec(spec)
    runtime = SpecRuntime.load(document)
    out = {}
    for check in document.spec.checks:
        context = runtime.context(check)
        if not share:
            context.shared = None
        result = execute(context, check)
        out[check.name] = (result.value, result.evaluations)
    return out


def test_checks_of_a_spec_compute_the_clean_logits_once_and_agree_with_their_own(
    tmp_path: Path,
) -> None:
    spec = _spec(tmp_path, "robustness_checks.demo.model:digits_cnn, kwargs: {pretrained: true}")
    shared, alone = _run(spec, share=True), _run(spec, share=False)
    assert {name: value for name, (value, _) in shared.items()} == pytest_approx(
        {name: value for name, (value, _) in alone.items()}
    )
    # Alone, every check reads its data; shared, the first reader pays for the rest.
    assert alone["ece"][1] == alone["abstain"][1] == alone["errors"][1] == 100
    assert alone["ece-first-30"][1] == 30
    assert shared["ece"][1] == 100
    assert shared["ece-first-30"][1] == shared["abstain"][1] == shared["errors"][1] == 0
    assert shared["energy"][1] == 40  # only the OOD data is new
    # knn reads the features of its fit data, the test data and the OOD data: 240 (alone, the
    # fit is cached, so 140 the second time); shared, the second knn check reads nothing.
    assert (alone["knn"][1], alone["knn-again"][1]) == (240, 140)
    assert (shared["knn"][1], shared["knn-again"][1]) == (240, 0)
    assert shared["knn-again"][1] == 0


def test_a_random_model_shares_nothing(tmp_path: Path) -> None:
    (tmp_path / "dropout_model.py").write_text(
        "import torch\n"
        "from robustness_checks.demo.model import digits_cnn\n"
        "class AlwaysDropout(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return torch.nn.functional.dropout(x, 0.3, training=True)\n"
        "def make():\n"
        "    return torch.nn.Sequential(AlwaysDropout(), digits_cnn(pretrained=True))\n"
    )
    spec = _spec(tmp_path, "dropout_model.py:make")
    shared = _run(spec, share=True)
    assert shared["ece"][1] == shared["abstain"][1] == shared["errors"][1] == 100


def test_shared_passes_serve_a_prefix_of_the_same_tensor_and_nothing_else() -> None:
    shared, calls = SharedPasses(), []
    x = torch.arange(12.0).view(6, 2)

    def compute(rows: torch.Tensor):  # type: ignore[no-untyped-def]
        calls.append(len(rows))
        return {"sum": rows.sum(dim=1)}

    assert shared.get("sum", x, lambda: compute(x))["sum"].tolist() == [1, 5, 9, 13, 17, 21]
    assert shared.get("sum", x[:4], lambda: compute(x[:4]))["sum"].tolist() == [1, 5, 9, 13]
    other = x.clone()
    shared.get("sum", other, lambda: compute(other))
    shared.get("sum", x[2:], lambda: compute(x[2:]))  # not a prefix: own pass
    shared.get("mean", x, lambda: compute(x))  # another output: own pass
    assert calls == [6, 6, 4, 6]
    assert shared.saved == 4


def pytest_approx(values: dict) -> object:
    import pytest

    return pytest.approx(values, rel=1e-9, abs=1e-12)
