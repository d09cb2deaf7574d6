"""The HTML report checked offline: it parses, references nothing external, one section a check."""

from __future__ import annotations

import itertools
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

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
  - {name: errors, type: failure_prediction, score: entropy, min: 0.05}
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
def report_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict, str]:
    folder = tmp_path_factory.mktemp("report")
    (folder / "demo.robustness.yaml").write_text(SPEC)
    import subprocess
    import sys

    done = subprocess.run(
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
        text=True,
        check=False,
    )
    html = (folder / "r.html").read_text()
    return html, json.loads((folder / "r.json").read_text()), done.stdout


@pytest.fixture(scope="module")
def report(report_run: tuple[str, dict, str]) -> tuple[str, dict]:
    return report_run[0], report_run[1]


def test_report_parses_with_one_section_per_check(report: tuple[str, dict]) -> None:
    html, document = report
    parser = Structure()
    parser.feed(html)
    assert len(parser.sections) == len(document["results"]) == 5
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
    assert "1 failed" in html and "4 passed" in html


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
                if self.calls > 3:  # the first check's randomness probe (two passes), its pass
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


def _record(document: dict, check: str) -> dict:
    return next(r for r in document["results"] if r["check"] == check)


def test_failing_examples_carry_saliency_maps_drawn_in_the_html(report: tuple[str, dict]) -> None:
    html, document = report
    attack = _record(document, "pgd")
    rows = attack["details"]["failing_examples"]
    assert rows, "the attack fools some examples"
    shown = [row for row in rows if "saliency" in row]
    assert 0 < len(shown) <= 6  # only the examples the report shows
    for row in shown:
        assert len(row["saliency"]) == 64  # |d logit / dx| of a 1x8x8 digit, max over channels
        assert min(row["saliency"]) >= 0 and max(row["saliency"]) == 1.0
        assert row["saliency_max"] > 0
    summary = attack["details"]["saliency_maps"]
    assert summary["examples"] == len(shown) and summary["in_evaluations"] is False
    # The attack's forward passes (and its masking probe's) are all that `evaluations` counts.
    probe = attack["details"].get("masking_probe") or {}
    assert attack["evaluations"] == attack["details"]["forward_passes"] + probe.get(
        "evaluations", 0
    )
    errors = _record(document, "errors")["details"]["failing_examples"]
    assert errors and all(len(row["saliency"]) == 64 for row in errors)
    section = html.split('id="check-2"')[1].split("</section>")[0]
    assert ">saliency</text>" in section and "saliency |∂ logit(label) / ∂x|" in section
    # input, perturbation, perturbed input and saliency per row, plus the two colour scales
    assert section.count("data:image/png;base64,") == 4 * len(shown) + 2
    assert f"eps {rows[0]['eps']:.3g}" in section  # the caption names the eps
    assert f"−{max(abs(v) for r in rows[:6] for v in r['perturbation']):.3g}" in section


def test_histograms_and_confusion_matrix_are_drawn(report: tuple[str, dict]) -> None:
    html, document = report
    for check in ("abstain", "errors"):
        histogram = _record(document, check)["details"]["score_histogram"]
        counts = histogram["panels"][0]["counts"]
        assert set(counts) == {"correct", "wrong"} and len(histogram["edges"]) == 21
        assert sum(counts["correct"]) + sum(counts["wrong"]) == 150
    assert html.count("share of group") >= 2 and "wrong (n=" in html
    matrix = _record(document, "calibrated")["details"]["confusion_matrix"]
    assert matrix["classes"] == 10 and sum(map(sum, matrix["counts"])) == 150
    assert "Confusion matrix" in html and "true label" in html


def test_environment_lists_package_versions_and_the_git_commit(
    report: tuple[str, dict], tmp_path: Path
) -> None:
    import subprocess

    from robustness_checks.reporting.json_report import environment, git_state

    html, document = report
    found = document["environment"]
    assert {"python", "torch", "device", "robustness_checks", "torchvision"} <= set(found)
    for key in ("robustness_checks", "torchvision"):
        assert f"<th>{key}</th><td>{found[key]}</td>" in html
    assert git_state(tmp_path) == {}  # not a repository: no git entry, no error
    git = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "a.txt").write_text("a")
    subprocess.run([*git, "-C", str(tmp_path), "add", "a.txt"], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-qm", "a"], check=True)
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert git_state(tmp_path) == {"git": head, "git_dirty": False}
    (tmp_path / "a.txt").write_text("b")
    assert git_state(tmp_path)["git_dirty"] is True
    assert environment([])["torch"] == found["torch"]
    page = render_html({"environment": {"git": head, "git_dirty": True}, "results": []})
    assert f"<th>git commit</th><td>{head} (with uncommitted changes)</td>" in page


def test_report_is_self_contained(report: tuple[str, dict]) -> None:
    html, _ = report
    assert "<script" not in html and "<link" not in html and "<iframe" not in html
    assert re.search(r"https?://", html) is None  # nothing to fetch, not even an xmlns
    assert re.search(r"""(?:src|href)=["'](?!data:|#)""", html) is None


def test_the_session_says_when_it_writes_the_html(report_run: tuple[str, dict, str]) -> None:
    assert re.search(r"writing HTML report \S+r\.html \(5 checks\) \.\.\.", report_run[2])


def _adversarial_result(rows: list[dict]) -> SimpleNamespace:
    """A typed adversarial result holding just what the chart reads."""
    from robustness_checks.checks.adversarial_details import AdversarialDetails, EpsRow

    full = [
        {**row, "accuracy_drop": 0.97 - row["adversarial_accuracy"], "accuracy_drop_ci": [0, 1]}
        for row in rows
    ]
    details = AdversarialDetails.model_construct(
        per_eps=[EpsRow(**row) for row in full],
        clean_accuracy=0.97,
        clean_accuracy_ci=(0.95, 0.99),
        attack={"label": "PGD-Linf"},
    )
    return SimpleNamespace(details=details)


def test_eps_tick_labels_do_not_overlap() -> None:
    from robustness_checks.reporting.curves import accuracy_against_eps
    from robustness_checks.reporting.svg import text_width

    eps = [0.01, 0.0125, 0.015, 0.0175, 0.02]
    rows = [
        {"eps": e, "adversarial_accuracy": 0.9 - e, "adversarial_accuracy_ci": [0.8, 0.95]}
        for e in eps
    ]
    svg = accuracy_against_eps(_adversarial_result(rows))
    assert svg is not None
    ticks = [
        (float(x), label)
        for x, label in re.findall(
            r'<text x="([\d.]+)" y="[\d.]+" text-anchor="middle">([^<]+)<', svg
        )
        if re.fullmatch(r"[\d.]+", label)
    ]
    assert len(ticks) >= 3
    for (a, left), (b, right) in itertools.pairwise(ticks):
        assert b - a >= (text_width(left) + text_width(right)) / 2 + 4
    single = accuracy_against_eps(_adversarial_result(rows[:1]))
    assert ">0.01</text>" in (single or "")  # one eps: a tick at that eps


def test_reliability_legend_names_both_gap_colours() -> None:
    from robustness_checks.reporting.curves import reliability_diagram

    bins = [
        {"lo": 0.4, "hi": 0.5, "count": 5, "confidence": 0.45, "accuracy": 0.8},
        {"lo": 0.9, "hi": 1.0, "count": 50, "confidence": 0.95, "accuracy": 0.9},
    ]
    from robustness_checks.checks.calibration import BinRow, CalibrationDetails

    details = CalibrationDetails.model_construct(bins=[BinRow(**row) for row in bins])
    svg = reliability_diagram(SimpleNamespace(metric="ece", details=details)) or ""
    assert "under-confident gap (accuracy above confidence)" in svg
    assert "over-confident gap (confidence above accuracy)" in svg
    assert "5 examples, accuracy 0.800" in svg  # bin counts as hover titles


def test_saliency_equals_captum_saliency() -> None:
    captum = pytest.importorskip("captum.attr")
    import torch

    from robustness_checks.checks.common.report_data import input_saliency
    from robustness_checks.demo.model import digits_cnn

    model = digits_cnn(pretrained=True).eval()
    x = torch.rand(4, 1, 8, 8)
    labels = torch.tensor([0, 3, 5, 9])
    ours = input_saliency(model, x, labels)
    theirs = captum.Saliency(model).attribute(x.clone().requires_grad_(), target=labels, abs=True)
    torch.testing.assert_close(ours, theirs)


def test_score_histogram_and_confusion_counts() -> None:
    import numpy as np

    from robustness_checks.checks.common.report_data import confusion_matrix, score_histogram

    found = score_histogram(
        "entropy", [("eps 0", {"a": np.array([0.0, 1.0, np.nan]), "b": np.array([0.5])})], bins=2
    )
    assert found["edges"] == [0.0, 0.5, 1.0]
    assert found["panels"][0]["counts"] == {"a": [1, 1], "b": [0, 1]}
    labels, predictions = np.array([0, 1, 1, 2]), np.array([0, 2, 1, 2])
    assert confusion_matrix(labels, predictions, 3)["counts"] == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    many = confusion_matrix(np.arange(40) % 40, (np.arange(40) + 1) % 40, 40)
    assert "counts" not in many and len(many["most_confused"]) == 20
    assert many["correct"] == 0 and many["total"] == 40
