"""A configuration error at run time is one line of cause and remedy, with no library frames."""

from __future__ import annotations

import textwrap

import pytest

LINEAR_FACTORY = """\
import torch

def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))

def broken_model():
    class Broken(torch.nn.Module):
        def forward(self, x):
            return helper(x)

    return Broken()

def helper(x):
    raise RuntimeError("the user's own bug")
"""

CHECKS = {
    "no-dropout": "{name: no-dropout, type: entropy_trend, uncertainty: {method: mc_dropout}, "
    "eps: [0.0, 0.1]}",
    "no-members": "{name: no-members, type: entropy_trend, uncertainty: {method: ensemble}, "
    "eps: [0.0, 0.1]}",
}


def spec(model: str, check: str) -> str:
    return textwrap.dedent(f"""\
    model: {{factory: factories.py:{model}}}
    data: {{factory: robustness_checks.demo.digits:test_set, limit: 40}}
    checks:
      - {check}
    """)


def error_section(output: list[str]) -> list[str]:
    """The lines pytest prints for the errored check, up to the next section."""
    start = next(i for i, line in enumerate(output) if line.startswith("___"))
    end = next(i for i, line in enumerate(output) if i > start and line[:3] in ("===", "---"))
    return [line for line in output[start + 1 : end] if line.strip()]


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_a_configuration_error_prints_its_message_and_no_frames(
    pytester: pytest.Pytester, name: str
) -> None:
    pytester.makepyfile(factories=LINEAR_FACTORY)
    pytester.makefile(".robustness.yaml", spec=spec("model", CHECKS[name]))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    section = error_section(result.stdout.lines)
    assert len(section) == 1, section
    assert f"entropy_trend check {name!r} could not run: " in section[0]
    assert "Use method 'softmax'" in section[0] or "list them under model.ensemble" in section[0]


def test_a_bug_in_the_users_model_shows_only_the_users_frames(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(factories=LINEAR_FACTORY)
    pytester.makefile(".robustness.yaml", spec=spec("broken_model", "{name: c, type: calibration}"))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    text = "\n".join(error_section(result.stdout.lines))
    assert "the user's own bug" in text and "factories.py:15: in helper" in text
    for library in ("pluggy", "site-packages", "robustness_checks/"):
        assert library not in text
