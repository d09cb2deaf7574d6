"""The HTML report checked offline: it parses, references nothing external, one section a check."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from robustness_checks.reporting.html_report import render_html

pytest_plugins = ["pytester"]

SPEC = """\
model:
  factory: robustness_checks.demo.model:digits_cnn
  kwargs: {pretrained: true}
data:
  factory: robustness_checks.demo.digits:test_set
  kwargs: {limit: 150}
checks:
  - {name: calibrated, type: calibration, max: 0.1}
  - name: pgd
    type: adversarial
    attack: {method: pgd, eps: [0.05, 0.1], steps: 5}
    max_drop: 0.01
  - name: ood
    type: ood
    ood_data: {factory: robustness_checks.demo.digits:noise_images, kwargs: {count: 50}}
    score: energy
    min: 0.5
  - {name: abstain, type: selective, coverage: 0.9, min_accuracy: 0.5}
"""


class Structure(HTMLParser):
    """Collects tags, attributes pointing elsewhere, and check sections."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.sections: list[str] = []
        self.external: list[str] = []
        self.tags: set[str] = set()
        self.svgs = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.svgs += tag == "svg"
        values = dict(attrs)
        if tag == "section" and "check" in (values.get("class") or ""):
            self.sections.append(values.get("id") or "")
        for name in ("src", "href", "xlink:href", "action"):
            target = values.get(name) or ""
            if target and not target.startswith(("#", "data:")):
                self.external.append(f"{tag} {name}={target}")
        if tag not in {"meta", "br", "img", "link", "input", "hr", "path", "use", "rect", "stop"}:
            self.stack.append(tag)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    folder = tmp_path_factory.mktemp("report")
    (folder / "demo.robustness.yaml").write_text(SPEC)
    import subprocess
    import sys

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(folder / "demo.robustness.yaml"),
            "-p",
            "no:cacheprovider",
            f"--robustness-html={folder / 'r.html'}",
            f"--robustness-json={folder / 'r.json'}",
            "-q",
        ],
        cwd=folder,
        capture_output=True,
        check=False,
    )
    return (folder / "r.html").read_text(), json.loads((folder / "r.json").read_text())


def test_report_parses_with_one_section_per_check(report: tuple[str, dict]) -> None:
    html, document = report
    parser = Structure()
    parser.feed(html)
    assert len(parser.sections) == len(document["results"]) == 4
    assert {"table", "section", "svg", "style"} <= parser.tags
    assert parser.svgs >= 4  # a plot per check, plus the failing examples of the attack
    assert "<script" not in html


def test_report_references_nothing_outside_itself(report: tuple[str, dict]) -> None:
    html, _ = report
    parser = Structure()
    parser.feed(html)
    assert parser.external == []
    assert "@import" not in html and "url(http" not in html
    assert "<link" not in html


def test_report_shows_outcomes_messages_and_environment(report: tuple[str, dict]) -> None:
    html, document = report
    for record in document["results"]:
        assert f"pill {record['outcome']}" in html
        assert record["check"] in html
    assert "exceeds max_drop 0.01" in html  # the failing attack's message
    assert "sha256" in html and document["environment"]["torch"] in html
    assert "1 failed" in html and "3 passed" in html


def test_report_from_a_document_with_an_error_and_no_details() -> None:
    html = render_html(
        {
            "results": [
                {
                    "nodeid": "s.yaml::broken",
                    "check": "broken",
                    "type": "calibration",
                    "metric": "ece",
                    "value": None,
                    "outcome": "error",
                    "passed": False,
                    "error": "LoadError: no weights",
                    "seconds": 0.1,
                    "confidence": 0.95,
                    "details": {},
                }
            ]
        }
    )
    assert "LoadError: no weights" in html and "pill error" in html


def test_report_file_is_written_atomically(tmp_path: Path) -> None:
    from robustness_checks.reporting.html_report import write_html

    target = tmp_path / "nested" / "report.html"
    write_html(target, {"results": []})
    assert target.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]


def test_pytest_html_rows_carry_the_plot(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_html")
    pytester.makefile(".robustness.yaml", spec=SPEC.split("  - name: pgd")[0])
    pytester.runpytest_subprocess("--html=page.html", "--self-contained-html")
    page = (pytester.path / "page.html").read_text()
    assert "Reliability diagram" in page  # the SVG title of the calibration plot


def test_interrupted_session_still_writes_every_finished_check(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        factories="""
        import torch
        from robustness_checks.demo.model import digits_cnn

        class StopsOnSecondCheck(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = digits_cnn(pretrained=True)
                self.calls = 0

            def forward(self, x):
                self.calls += 1
                if self.calls > 1:
                    raise KeyboardInterrupt
                return self.net(x)

        def model():
            return StopsOnSecondCheck()
        """
    )
    pytester.makefile(
        ".robustness.yaml",
        spec="""
model: {factory: factories.py:model}
data: {factory: robustness_checks.demo.digits:test_set, kwargs: {limit: 100}}
checks:
  - {name: first, type: calibration, bootstrap: 10}
  - {name: second, type: calibration}
  - {name: third, type: calibration}
""",
    )
    result = pytester.runpytest_subprocess("--robustness-json=r.json", "--robustness-html=r.html")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    document = json.loads((pytester.path / "r.json").read_text())
    # The interrupted check is recorded as an error; the ones after it never ran.
    assert [(r["check"], r["outcome"]) for r in document["results"]] == [
        ("first", "passed"),
        ("second", "error"),
    ]
    assert document["complete"] is False
    assert "first" in (pytester.path / "r.html").read_text()
    assert not list(pytester.path.glob(".r.json*"))  # no temporary file left behind
