"""Warnings a user needs on separation results: too few of a class, an inverted score."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET

import pytest
import torch
from torch import nn

import robustness_checks


def linear_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        model.bias.zero_()
    return model.eval()


def one_error_data(n: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """Points whose larger coordinate is the label, except one mislabelled point."""
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(n, 2, generator=generator)
    y = (x[:, 1] > x[:, 0]).long()
    y[0] = 1 - y[0]
    return x, y


def test_a_single_error_is_named_with_its_count() -> None:
    x, y = one_error_data()
    result = robustness_checks.failure_prediction(linear_model(), (x, y), metric="auroc")
    assert result.details.positives == 1
    doubts = [w for w in result.warnings if w.startswith("only 1 errors")]
    assert len(doubts) == 1 and "fewer than 10" in doubts[0]


def test_plenty_of_errors_and_a_working_score_give_no_doubt() -> None:
    x, y = one_error_data()
    y[1:40] = 1 - y[1:40]  # 39 more errors, as confident as the hits: AUROC near 0.5
    result = robustness_checks.failure_prediction(linear_model(), (x, y), metric="auroc")
    assert result.details.positives == 40
    assert not [w for w in result.warnings if w.startswith(("only", "AUROC"))]


def test_an_inverted_ood_score_gets_a_hint() -> None:
    """Scaled-up inputs make a linear model more confident: confidence-based scores rank those
    OOD inputs below the in-distribution ones, AUROC near 0."""
    x, y = one_error_data()
    ood = 20.0 * torch.rand(200, 2, generator=torch.Generator().manual_seed(2)) + 5.0
    ood[:, 0] += 10.0
    result = robustness_checks.ood(linear_model(), (x, y), ood, bounds=None)
    assert result.value < 0.1
    hints = [w for w in result.warnings if w.startswith("AUROC")]
    assert len(hints) == 1 and "runs the other way" in hints[0]
    near_boundary = torch.rand(200, 1, generator=torch.Generator().manual_seed(3)).repeat(1, 2)
    separated = robustness_checks.ood(linear_model(), (x, y), near_boundary, bounds=None)
    assert separated.value > 0.9
    assert not [w for w in separated.warnings if w.startswith(("AUROC", "only"))]


FACTORIES = """\
import torch
from torch import nn

def model():
    return linear_model()

def data():
    return one_error_data()
"""


def test_the_warning_reaches_json_and_junit(pytester: pytest.Pytester) -> None:
    import inspect

    helpers = inspect.getsource(linear_model) + "\n" + inspect.getsource(one_error_data)
    pytester.makepyfile(factories=FACTORIES + "\n" + helpers)
    pytester.makefile(
        ".robustness.yaml",
        spec=textwrap.dedent("""\
        model: {factory: factories.py:model}
        data: {factory: factories.py:data}
        bounds: null
        checks:
          - {name: errors, type: failure_prediction, metric: auroc}
        """),
    )
    result = pytester.runpytest("--robustness-json=out.json", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1)
    record = json.loads((pytester.path / "out.json").read_text())["results"][0]
    assert any(w.startswith("only 1 errors") for w in record["warnings"])
    properties = ET.parse(pytester.path / "junit.xml").getroot().iter("property")
    assert any(p.get("value", "").startswith("only 1 errors") for p in properties)
