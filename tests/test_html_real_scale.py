"""The HTML report at real scale: per-bin counts, one confusion matrix per model and data,
thumbnails of 224-px inputs within a byte budget, readable noise plots, partial results."""

from __future__ import annotations

import base64
import io
import json
import re
from html import unescape
from html.parser import HTMLParser
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import robustness_checks as rc
from robustness_checks.errors import RobustnessWarning
from robustness_checks.reporting.html_report import render_html


class Sections(HTMLParser):
    """Each check section's text, its element ids and links, and its figures' titles."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.sections: dict[str, str] = {}
        self._current: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"] or "")
        if tag == "a" and (values.get("href") or "").startswith("#"):
            self.links.append((values["href"] or "")[1:])
        if tag == "section":
            self._current = values.get("id")
            self.sections[self._current or ""] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._current = None

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self.sections[self._current] += data


def _section(html: str, check: str) -> str:
    """The raw HTML of the section of `check`."""
    for part in html.split("<section ")[1:]:
        if re.search(rf"<h2>{re.escape(check)} <small>", part):
            return part.split("</section>")[0]
    raise AssertionError(f"no section for {check}")


def _document(*records: dict[str, Any]) -> dict[str, Any]:
    return {"created": "now", "environment": {}, "results": list(records)}


def _record(result: Any, nodeid: str, prints: dict[str, str] | None = None) -> dict[str, Any]:
    record = json.loads(json.dumps(result.to_dict()))
    record["nodeid"] = record["id"] = nodeid
    record["check"] = nodeid.split("::")[-1]
    if prints is not None:
        record["fingerprints"] = {**prints, "check": "c"}
    return record


# Reliability diagram: every bin's count, sparse bins faded.


@pytest.fixture(scope="module")
def digits() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    from robustness_checks.demo.digits import test_set
    from robustness_checks.demo.model import digits_cnn

    x, y = test_set()
    return digits_cnn(pretrained=True).eval(), x, y


def test_reliability_diagram_prints_each_bins_count_computed_by_hand(digits: Any) -> None:
    from robustness_checks.reporting.curves import SPARSE_BIN, reliability_diagram

    model, x, y = digits
    result = rc.calibration(model, (x, y), bins=15, bootstrap=10)
    with torch.no_grad():
        confidence = model(x).softmax(dim=1).amax(dim=1)
    conf = confidence.double().numpy()
    by_hand = np.bincount(np.clip(np.ceil(conf * 15).astype(int) - 1, 0, 14), minlength=15)
    rows = result.details.bins
    assert [r.count for r in rows] == [int(c) for c in by_hand if c]
    svg = reliability_diagram(result) or ""
    printed = [int(t) for t in re.findall(r'font-size="8" fill="#1d2329">(\d+)</text>', svg)]
    assert printed == [int(c) for c in by_hand if c]  # one count per non-empty bin, in order
    assert any(r.count < SPARSE_BIN for r in rows), "the digits give some sparse bins"
    # Sparse bins (their accuracy is noise) are faded and outlined; the others are not.
    for r in rows:
        tip = f"({r.lo:.3g}, {r.hi:.3g}]: {r.count} examples, accuracy {r.accuracy:.3f}"
        bars = re.findall(r"<rect ([^>]*)><title>[^<]*" + re.escape(tip), svg)
        assert bars, tip
        dashed = ["stroke-dasharray" in bar for bar in bars]
        assert all(dashed) if r.count < SPARSE_BIN else not any(dashed)
    assert f"bin of fewer than {SPARSE_BIN} examples (faded)" in svg
    assert ">examples</text>" in svg


# Confusion matrix: one per model and data set.


def test_one_confusion_matrix_per_model_and_data_later_sections_link_to_it(digits: Any) -> None:
    from robustness_checks.demo.digits import noise_images
    from robustness_checks.demo.model import digits_cnn

    model, x, y = digits
    ood_data = noise_images(60)
    same = {"model": "a" * 64, "data": "b" * 64}
    other = {"model": "c" * 64, "data": "b" * 64}
    records = [
        _record(rc.calibration(model, (x, y), bootstrap=10), "s.yaml::ece", same),
        _record(rc.calibration(model, (x, y), metric="brier", bootstrap=10), "s.yaml::brier", same),
        _record(
            rc.ood(model, (x, y), ood_data=ood_data, score="energy", bootstrap=10),
            "s.yaml::ood",
            {**same, "data": "d" * 64},  # its data print also covers the OOD inputs
        ),
        _record(rc.calibration(model, (x[:100], y[:100]), bootstrap=10), "s.yaml::subset", same),
        _record(
            rc.calibration(digits_cnn(pretrained=True, seed=1), (x, y), bootstrap=10),
            "t.yaml::other-model",
            other,
        ),
    ]
    html = render_html(_document(*records))
    # Drawn for the first section of the full data, for the 100-example subset (other counts)
    # and for the other model: three matrices for five sections that carry one.
    assert html.count(">Confusion matrix</text>") == 3
    for check in ("brier", "ood"):
        section = _section(html, check)
        assert ">Confusion matrix</text>" not in section
        assert 'href="#check-1-confusion"' in section and ">ece</a>" in section
    for check in ("ece", "subset", "other-model"):
        assert ">Confusion matrix</text>" in _section(html, check)
    first = _section(html, "ece")
    assert 'id="check-1-confusion"' in first
    assert 'href="#check-2">brier</a>' in first and 'href="#check-3">ood</a>' in first
    assert f"model {'a' * 8}, data {'b' * 8}" in first
    parser = Sections()
    parser.feed(html)
    assert set(parser.links) <= parser.ids  # every link lands on a section or a matrix


# Thumbnails of 224-px inputs.


class Tiny224(nn.Module):
    """A small classifier of 3x224x224 images: 16x16 patches, three classes."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 16, stride=16)
        self.head = nn.Linear(6, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).tanh().mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def images_224() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    coarse = torch.rand(16, 3, 7, 7, generator=generator)
    x = F.interpolate(coarse, size=(224, 224), mode="bilinear", align_corners=False)
    model = Tiny224().eval()
    with torch.no_grad():
        y = model(x).argmax(dim=1)  # every example right: the attack's failures are its own
    return model, x, y


@pytest.fixture(scope="module")
def attacked_224(images_224: Any) -> Any:
    model, x, y = images_224
    return rc.adversarial(
        model, (x, y), eps=0.2, steps=3, max_drop=1.0, gradient_masking="off", batch_size=8
    )


def test_large_inputs_keep_thumbnails_with_saliency(attacked_224: Any) -> None:
    from robustness_checks.checks.common.thumbnails import THUMBNAIL_SIDE

    rows = attacked_224.details.failing_examples
    assert rows, "the attack fools some examples"
    side = THUMBNAIL_SIDE
    for row in rows:
        assert row.source_shape == [3, 224, 224] and row.shape == [3, side, side]
        assert len(row.input) == len(row.perturbation) == 3 * side * side
        assert row.pixels is None  # the full-size pixels were only kept for the saliency
        # The perturbation keeps its size (largest change per block), within eps.
        assert 0.1 < max(abs(v) for v in row.perturbation) <= 0.2 + 1e-6
    shown = [row for row in rows if row.saliency is not None]
    assert 0 < len(shown) <= 6 and all(len(r.saliency) == side * side for r in shown)
    assert all(max(r.saliency) == 1.0 for r in shown)
    record = json.dumps(attacked_224.to_dict())
    assert '"pixels"' not in record and '"source_shape": [3, 224, 224]' in record
    assert len(record) < 1_500_000  # thumbnails, not 150,528 values per picture


def test_thumbnail_is_the_block_mean_and_the_largest_change() -> None:
    from robustness_checks.checks.common.thumbnails import thumbnail_rows

    x = torch.zeros(3, 224, 224)
    x[:, :112] = 1.0  # top half white
    delta = torch.zeros_like(x)
    delta[0, 5, 7] = -0.03  # one pixel changed: a mean would dilute it 12 times
    found = thumbnail_rows(x, x + delta)
    assert found["shape"] == [3, 64, 64] and found["source_shape"] == [3, 224, 224]
    planes = np.asarray(found["input"]).reshape(3, 64, 64)
    assert planes[:, :32].min() == 1.0 and planes[:, 32:].max() == 0.0
    change = np.asarray(found["perturbation"]).reshape(3, 64, 64)
    assert change.min() == pytest.approx(-0.03) and np.count_nonzero(change) == 1
    assert thumbnail_rows(torch.zeros(5, 224, 224), torch.zeros(5, 224, 224)) == {}


def _pictures(svg: str) -> list[tuple[str, bytes]]:
    return [
        (kind, base64.b64decode(data))
        for kind, data in re.findall(r'href="data:image/(png|jpeg);base64,([^"]+)"', svg)
    ]


def test_224_px_failures_are_drawn_as_small_jpeg_thumbnails(attacked_224: Any) -> None:
    from PIL import Image

    html = render_html(_document(_record(attacked_224, "s.yaml::pgd")))
    section = _section(html, "pgd")
    rows = attacked_224.details.failing_examples
    shown = min(len(rows), 6)
    pictures = [(kind, data) for kind, data in _pictures(section) if kind == "jpeg"]
    assert len(pictures) == 4 * shown  # input, perturbation, perturbed input, saliency
    for _, data in pictures:
        image = Image.open(io.BytesIO(data))
        assert image.size == (64, 64) and len(data) < 8_000
    assert "Inputs of 3×224×224 drawn as 64×64 thumbnails" in section
    assert 'style="image-rendering:pixelated"' not in section.split("colour")[0]


def test_failure_prediction_pictures_224_px_errors(images_224: Any) -> None:
    model, x, y = images_224
    wrong = y.clone()
    wrong[:5] = (wrong[:5] + 1) % 3
    with pytest.warns(RobustnessWarning, match="only 5 errors"):
        result = rc.failure_prediction(model, (x, wrong), score="confidence", bootstrap=10)
    rows = result.details.failing_examples
    assert len(rows) == 5 and all(r.source_shape == [3, 224, 224] for r in rows)
    assert all(r.perturbation is None and len(r.saliency or []) == 64 * 64 for r in rows)
    section = _section(render_html(_document(_record(result, "s.yaml::errors"))), "errors")
    assert section.count("data:image/jpeg") == 2 * 5  # input and saliency


def test_report_pictures_stay_within_the_byte_budget(attacked_224: Any) -> None:
    records = [_record(attacked_224, f"s.yaml::pgd-{k}") for k in range(4)]
    full = render_html(_document(*records))
    one_check = sum(len(d) * 4 // 3 for _, d in _pictures(_section(full, "pgd-0")))
    budget = int(one_check * 1.5)
    html = render_html(_document(*records), picture_budget=budget)
    spent = [
        sum(len(data) * 4 // 3 + 30 for _, data in _pictures(_section(html, f"pgd-{k}")))
        for k in range(4)
    ]
    assert sum(spent) <= budget + 4_000  # example pictures within the bound (colour bars aside)
    assert spent[0] > 0 and spent[2] == spent[3] == 0
    note = "not drawn: this report's pictures reached their bound"
    assert note in unescape(_section(html, "pgd-1")) and note in unescape(_section(html, "pgd-3"))
    assert "not drawn" not in _section(html, "pgd-0")


def test_small_images_still_drawn_sharp_and_scaled_up() -> None:
    from PIL import Image

    from robustness_checks.details import ExampleRow
    from robustness_checks.reporting.images import example_images

    row = ExampleRow(
        index=3,
        label=1,
        clean_prediction=1,
        adversarial_prediction=2,
        eps=0.03,
        shape=[3, 32, 32],
        input=[0.5] * 3072,
        perturbation=[0.03] * 3072,
    )
    details = SimpleNamespace(shown_examples=lambda: [row])
    svg = example_images(SimpleNamespace(details=details)) or ""
    pictures = _pictures(svg)
    assert [kind for kind, _ in pictures[:3]] == ["png"] * 3
    assert Image.open(io.BytesIO(pictures[0][1])).size == (64, 64)  # 32 px, each pixel 2x2
    assert svg.count('style="image-rendering:pixelated"') == 3


# Noise convergence: large, a few labelled decades.


def test_noise_plot_is_wide_with_a_few_labelled_decades() -> None:
    from robustness_checks.checks.noise import HistoryPoint, InputRow, NoiseDetails
    from robustness_checks.reporting.curves import noise_convergence

    spent = [100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 300_000]
    history = [
        HistoryPoint(evaluations=e, probability=1e-12, ci_low=1e-16, ci_high=1e-3) for e in spent
    ]
    zero = [HistoryPoint(evaluations=e, probability=0.0, ci_low=0.0, ci_high=3 / e) for e in spent]
    common = {"label": 0, "relative_error": 0.1, "converged": True, "outcome": "within"}
    inputs = [
        InputRow(index=0, probability=1e-12, log10_probability=-12, ci=(1e-16, 1e-3),
                 evaluations=300_000, history=history, **common),
        InputRow(index=1, probability=0.0, log10_probability=None, ci=(0.0, 1e-5),
                 evaluations=300_000, history=zero, **common),
    ]  # fmt: skip
    details = NoiseDetails.model_construct(inputs=inputs)
    svg = noise_convergence(SimpleNamespace(details=details, threshold=1e-3)) or ""
    assert float(re.match(r'<svg width="([\d.]+)"', svg).group(1)) >= 560  # type: ignore[union-attr]
    labels = re.findall(r'text-anchor="(?:middle|end)">(\d*×?10[⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+)</text>', svg)
    x_labels = [t for t in labels if "⁻" not in t]
    y_labels = [t for t in labels if "⁻" in t]
    assert 2 <= len(x_labels) <= 5 and 2 <= len(y_labels) <= 5  # not one per decade
    assert "input 1: none misclassified, upper end of its interval" in svg


# A timed-out check: what it finished, marked partial, beside the error.


def test_timed_out_check_shows_its_partial_figures() -> None:
    record = {
        "nodeid": "s.yaml::slow",
        "check": "slow",
        "type": "adversarial",
        "metric": "accuracy_drop",
        "value": None,
        "outcome": "error",
        "passed": False,
        "error": "CheckTimeout: check 'slow' ran past its timeout of 3 s",
        "seconds": 3.1,
        "confidence": 0.95,
        "warnings": [],
        "details": {
            "timed_out": {
                "examples_done": 20,
                "examples": 40,
                "figures": {"clean accuracy": 0.95, "accuracy at eps 0.1": 0.4},
            }
        },
    }
    section = _section(render_html(_document(record)), "slow")
    assert "ran past its timeout of 3 s" in section  # the error stays
    assert "Partial results of the timed-out check (20 of 40 examples, 50%)" in section
    for name, value in (("clean accuracy", "0.95"), ("accuracy at eps 0.1", "0.4")):
        assert re.search(rf">{name}</text>.*?>{value}</text>", section)
    assert "not a verdict" in section
    widths = re.findall(
        r'<rect x="[\d.]+" y="[\d.]+" width="([\d.]+)" height="12" fill="#8a', section
    )
    assert [float(w) for w in widths] == pytest.approx([110, 209, 88])  # 50%, 0.95, 0.4 of 220


def test_every_warning_is_shown_prominently_in_its_section() -> None:
    warnings = [
        "only 3 errors (fewer than 10): the separation metrics rest on so few examples",
        "AUROC 0.3 is well below 0.5: the score ranks the OOD inputs below the others",
    ]
    record = {
        "nodeid": "s.yaml::w",
        "check": "w",
        "type": "failure_prediction",
        "metric": "auroc",
        "value": 0.3,
        "outcome": "passed",
        "passed": True,
        "seconds": 0.1,
        "confidence": 0.95,
        "warnings": warnings,
        "details": {},
    }
    html = render_html(_document(record))
    section = _section(html, "w")
    box = section.split('<div class="warnings" role="note">')[1].split("</div>")[0]
    assert "2 warnings" in box
    for text in warnings:
        assert f"<li>warning: {text}</li>" in box
    assert "2 warnings</span>" in html  # and in the summary table


def test_results_file_keeps_long_number_lists_on_one_line() -> None:
    from robustness_checks.reporting.json_report import dumps_results

    document = {
        "results": [{"details": {"input": [0.25] * 4096, "ci": [0.1, 0.2], "flags": [True] * 20}}]
    }
    text = dumps_results(document)
    assert json.loads(text) == document
    lines = text.splitlines()
    assert len(lines) < 40 and any(
        line.strip().startswith('"input": [0.25, 0.25') for line in lines
    )
