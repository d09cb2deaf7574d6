"""The `fuzz` check and its hypothesis strategies: planted triggers, shrinking, reproducibility."""

from __future__ import annotations

import textwrap
import typing
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from hypothesis import find, given, settings
from hypothesis import strategies as st
from torch import nn

import robustness_checks
from robustness_checks.checks import fuzz, registry
from robustness_checks.errors import SpecError
from robustness_checks.examples import as_examples
from robustness_checks.execution.context import CheckContext
from robustness_checks.fuzzing import strategies
from robustness_checks.fuzzing.strategies import Perturbation
from robustness_checks.results import CheckResult
from robustness_checks.spec.parse import parse_spec_text

# Inherits from the loaded profile, so under CI (hypothesis >= 6.116 loads its "ci" profile when
# CI is set) these tests are derandomised and use no example database.
settings.register_profile("robustness-fuzz-tests", max_examples=40, deadline=None)
TEST_SETTINGS = settings.get_profile("robustness-fuzz-tests")

ALL_KINDS = [
    {"kind": "linf", "eps": 0.1},
    {"kind": "l2", "eps": 0.5},
    {"kind": "gaussian", "sigma": 0.1},
    {"kind": "brightness", "max": 0.3},
    {"kind": "contrast", "max": 0.5},
    {"kind": "translate", "max": 2},
    {"kind": "rotate", "max": 15},
    {"kind": "occlusion", "max": 3},
]
IMAGE_SIZE = (8, 8)
ROW_KEYS = {
    "index",
    "label",
    "perturbations",
    "clean_prediction",
    "clean_confidence",
    "perturbed_prediction",
    "perturbed_confidence",
    "shape",
    "input",
    "perturbation",
    "saliency",  # for the HTML report: |d logit(label) / dx| at the perturbed input
    "saliency_max",
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # Hundreds of tiny forward passes: thread hand-offs would cost more than the arithmetic.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def images(count: int = 12, mean: float = 0.5, seed: int = 0) -> torch.Tensor:
    """(count, 1, 8, 8) images in [0.3, 0.7] whose mean is exactly `mean`."""
    u = torch.rand(count, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    x = mean + 0.2 * (u - 0.5)
    return x - x.mean(dim=(1, 2, 3), keepdim=True) + mean


class ConstantModel(nn.Module):
    """Ignores its input: invariant to every perturbation by construction."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor([2.0, 0.0]).expand(len(x), 2) + 0.0 * x.flatten(1)[:, :1]


class BrightnessTrigger(nn.Module):
    """Class 1 exactly when the mean value exceeds `threshold` (a planted trigger)."""

    def __init__(self, threshold: float = 0.7) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.flatten(1).mean(dim=1)
        return torch.stack([torch.zeros_like(mean), 100 * (mean - self.threshold)], dim=1)


class PatchTrigger(nn.Module):
    """Class 1 exactly when the 3x3 block at row 2, column 3 is blacked out (a planted trigger)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        block = x[..., 2:5, 3:6].flatten(1).amax(dim=1)
        return torch.stack([torch.zeros_like(block), 100 * (0.1 - block)], dim=1)


class FadingModel(nn.Module):
    """Always class 0, but less and less sure as the mean value rises."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.flatten(1).mean(dim=1)
        return torch.stack([10 * (0.9 - mean), torch.zeros_like(mean)], dim=1)


def run(
    model: nn.Module, x: torch.Tensor, *, seed: int = 0, **params: Any
) -> tuple[CheckResult, int]:
    """Run the fuzz check directly (it is not registered here); no database unless given."""
    params = {"database": False, "max_examples": 200, **params}
    spec = fuzz.FuzzCheck.model_validate({"name": "fuzz-test", "type": "fuzz", **params})
    y = torch.zeros(len(x), dtype=torch.long)
    context = CheckContext.create(
        model, as_examples((x, y)), torch.device("cpu"), "fuzz-test", seed=seed
    )
    return fuzz.run_fuzz(context, spec), context.evaluations


def shrunk(result: CheckResult, kind: str) -> list[dict[str, Any]]:
    """The shrunk parameters of `kind` in every failure."""
    return [
        p["params"]
        for row in result.details["failures"]
        for p in row["perturbations"]
        if p["kind"] == kind
    ]


def test_an_invariant_model_never_fails() -> None:
    result, evaluations = run(ConstantModel(), images(), perturbations=ALL_KINDS)
    assert result.passed, result.message
    assert result.value == 0 and result.details["failures"] == []
    assert result.metric == "failing_inputs" and result.comparison == "<=" and result.threshold == 0
    assert result.examples == 12 and evaluations > 12 * 100
    assert result.message.startswith("label_invariant holds")


def test_a_brightness_trigger_is_caught_at_its_threshold() -> None:
    perturbations = [{"kind": "brightness", "max": 0.3}, {"kind": "linf", "eps": 0.03}]
    result, _ = run(BrightnessTrigger(0.7), images(), perturbations=perturbations)
    assert not result.passed
    assert result.value == 1.0  # every input has mean 0.5, so every one flips above +0.2
    for params in shrunk(result, "brightness"):
        assert params["delta"] == pytest.approx(0.2, abs=0.01)
    assert all(params["magnitude"] == 0 for params in shrunk(result, "linf"))
    row = result.details["failures"][0]
    assert set(row) == ROW_KEYS
    assert (row["index"], row["clean_prediction"], row["perturbed_prediction"]) == (0, 0, 1)
    assert row["shape"] == [1, 8, 8] and len(row["input"]) == len(row["perturbation"]) == 64
    assert row["perturbation"][0] == pytest.approx(row["perturbations"][0]["params"]["delta"])
    assert "input 0 (label 0) goes from 0" in result.message
    assert "under brightness +0.2" in result.message and "L-inf" not in result.message


def test_a_patch_trigger_is_caught_with_its_minimal_size_and_place() -> None:
    result, _ = run(PatchTrigger(), images(6), perturbations=[{"kind": "occlusion", "max": 5}])
    assert not result.passed and result.value == 1.0
    for params in shrunk(result, "occlusion"):
        assert (params["size"], params["top"], params["left"]) == (3, 2, 3)
    assert "3x3 patch at row 2, col 3" in result.message


def test_the_same_seed_gives_the_same_result() -> None:
    # Inputs with different means flip at different brightness shifts.
    x = torch.cat([images(4, mean) for mean in (0.45, 0.5, 0.55)])
    perturbations = [{"kind": "brightness", "max": 0.3}, {"kind": "gaussian", "sigma": 0.05}]
    first, first_evaluations = run(BrightnessTrigger(0.7), x, perturbations=perturbations)
    second, second_evaluations = run(BrightnessTrigger(0.7), x, perturbations=perturbations)
    assert {**first.to_dict(), "seconds": 0} == {**second.to_dict(), "seconds": 0}
    assert first_evaluations == second_evaluations
    deltas = sorted(p["delta"] for p in shrunk(first, "brightness"))
    assert deltas[0] == pytest.approx(0.15, abs=0.01) and deltas[-1] == pytest.approx(
        0.25, abs=0.01
    )


def test_failures_are_kept_in_the_database_and_replayed_first(tmp_path: Any) -> None:
    perturbations = [{"kind": "brightness", "max": 0.3}]
    database = str(tmp_path / "db")
    first, first_evaluations = run(
        BrightnessTrigger(0.7), images(4), perturbations=perturbations, database=database
    )
    second, second_evaluations = run(
        BrightnessTrigger(0.7), images(4), seed=7, perturbations=perturbations, database=database
    )
    assert first.details["failures"] == second.details["failures"]
    assert second_evaluations < first_evaluations / 3  # replayed, not searched again
    assert any((tmp_path / "db").iterdir())
    assert first.details["database"] == database


def test_the_database_location_comes_from_the_environment(monkeypatch: Any, tmp_path: Any) -> None:
    brightness = [{"kind": "brightness", "max": 0.3}]
    monkeypatch.setenv(fuzz.DATABASE_ENV, str(tmp_path / "env-db"))
    run(BrightnessTrigger(0.7), images(2), perturbations=brightness, database=None)
    monkeypatch.setenv(fuzz.DATABASE_ENV, "none")
    result, _ = run(BrightnessTrigger(0.7), images(2), perturbations=brightness, database=None)
    assert any((tmp_path / "env-db").iterdir()) and result.details["database"] is None


def test_max_confidence_drop_bounds_the_fall_of_the_clean_class() -> None:
    perturbations = [{"kind": "brightness", "max": 0.3}]
    labels, _ = run(FadingModel(), images(4), perturbations=perturbations)
    assert labels.passed, labels.message
    confidence, _ = run(
        FadingModel(), images(4), perturbations=perturbations, max_confidence_drop=0.2
    )
    assert not confidence.passed
    # sigmoid(10 * (0.9 - m)) falls from sigmoid(4) by 0.2 at m = 0.7723: a shift of +0.2723.
    for params in shrunk(confidence, "brightness"):
        assert params["delta"] == pytest.approx(0.2723, abs=0.01)
    row = confidence.details["failures"][0]
    assert row["clean_prediction"] == row["perturbed_prediction"] == 0
    assert row["clean_confidence"] - row["perturbed_confidence"] > 0.2
    assert confidence.message.split("; ")[1].startswith("max_confidence_drop 0.2 fails on 4")


def test_indices_choose_the_inputs() -> None:
    result, _ = run(
        BrightnessTrigger(0.7),
        images(6),
        perturbations=[{"kind": "brightness", "max": 0.3}],
        indices=[4, 1],
    )
    assert result.details["inputs"] == [4, 1]
    assert [row["index"] for row in result.details["failures"]] == [1, 4]


SPEC = textwrap.dedent(
    """\
    model: {factory: robustness_checks.demo.model:digits_cnn}
    data: {factory: robustness_checks.demo.digits:test_set}
    checks:
      - name: fuzzed
        type: fuzz
    """
)


@pytest.fixture
def registered(monkeypatch: Any) -> None:
    monkeypatch.setitem(registry.CHECK_TYPES, "fuzz", fuzz.CHECK)


def test_a_yaml_fuzz_check_is_parsed(registered: None) -> None:
    fields = (
        "perturbations: [{kind: brightness, max: 0.3}, {kind: linf, eps: 0.03}]\n"
        "property: label_invariant\ninputs: 20\nmax_examples: 200\n"
    )
    document = parse_spec_text(SPEC + textwrap.indent(fields, "    "), "s.robustness.yaml")
    check = document.spec.checks[0]
    assert check.budget_label() == "brightness max 0.3 + linf eps 0.03"
    assert check.property_name() == "label_invariant"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("perturbations: [{kind: blur, max: 1}]", "'linf', 'l2', 'gaussian'"),
        ("perturbations: [{kind: linf}]", "linf needs eps"),
        ("perturbations: [{kind: brightness, max: -0.1}]", "greater than or equal to 0"),
        ("perturbations: [{kind: brightness, eps: 0.1}]", "brightness takes max, not eps"),
        ("perturbations: [{kind: translate, max: 1.5}]", "whole number of pixels"),
        ("perturbations: []", "at least 1 item"),
        (
            "perturbations: [{kind: linf, eps: 0.1}]\nproperty: label_invariant\n"
            "max_confidence_drop: 0.2",
            "not both",
        ),
        ("perturbations: [{kind: linf, eps: 0.1}]\nmax_confidence_drop: 1.5", "less than or"),
        ("perturbations: [{kind: linf, eps: 0.1}]\ninputs: 3\nindices: [1]", "not both"),
    ],
)
def test_bad_fuzz_specs_are_refused(registered: None, fields: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec_text(SPEC + textwrap.indent(fields, "    ") + "\n", "s.robustness.yaml")
    assert message in caught.value.render()
    assert "check 'fuzzed'" in caught.value.render()


def test_the_python_api_passes_on_the_demo_model(registered: None) -> None:
    from robustness_checks.demo.digits import test_set
    from robustness_checks.demo.model import digits_cnn

    result = robustness_checks.fuzz(
        digits_cnn(pretrained=True),
        test_set(),
        name="brightness-invariant",
        perturbations=[{"kind": "brightness", "max": 0.1}, {"kind": "linf", "eps": 0.03}],
        property="label_invariant",
        database=False,
        device="cpu",
    )
    assert result.passed, result.message
    assert result.examples == 20 and result.evaluations >= 20 * 190


# Strategies


@pytest.mark.parametrize("spec", ALL_KINDS, ids=[s["kind"] for s in ALL_KINDS])
def test_the_minimal_perturbation_is_the_identity(spec: dict[str, Any]) -> None:
    budget = {k: v for k, v in spec.items() if k != "kind"}
    minimal = find(
        strategies.perturbations(spec["kind"], image_size=IMAGE_SIZE, **budget), lambda p: True
    )
    x = images(3)
    assert minimal.is_identity
    assert torch.equal(minimal.apply(x, (0.0, 1.0)), x)


def test_the_minimal_composition_is_the_identity() -> None:
    minimal = find(strategies.composition(ALL_KINDS, image_size=IMAGE_SIZE), lambda p: True)
    x = images(3)
    assert all(p.is_identity for p in minimal)
    assert torch.equal(strategies.apply_all(minimal, x, (0.0, 1.0)), x)
    assert strategies.describe_all(minimal) == "no perturbation"


@TEST_SETTINGS
@given(strategies.composition(ALL_KINDS, image_size=IMAGE_SIZE))
def test_perturbed_inputs_stay_in_bounds_and_keep_their_shape(
    perturbations: list[Perturbation],
) -> None:
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    perturbed = strategies.apply_all(perturbations, x, (0.0, 1.0))
    assert perturbed.shape == x.shape and perturbed.dtype == x.dtype
    assert perturbed.min() >= 0 and perturbed.max() <= 1
    unclipped = strategies.apply_all(perturbations, x * 4 - 2, None)
    assert unclipped.shape == x.shape and torch.isfinite(unclipped).all()


@TEST_SETTINGS
@given(st.sampled_from(ALL_KINDS).flatmap(lambda s: _strategy(s)))
def test_a_batch_is_perturbed_like_each_of_its_inputs(perturbation: Perturbation) -> None:
    x = images(4)
    batch = perturbation.apply(x, (0.0, 1.0))
    for i in range(len(x)):
        assert torch.allclose(batch[i : i + 1], perturbation.apply(x[i : i + 1], (0.0, 1.0)))


@TEST_SETTINGS
@given(st.sampled_from(ALL_KINDS).flatmap(lambda s: st.tuples(st.just(s), _strategy(s))))
def test_perturbations_stay_within_their_budget(pair: tuple[dict[str, Any], Perturbation]) -> None:
    spec, perturbation = pair
    x = images(2)
    change = perturbation.apply(x, None) - x
    p = perturbation.params
    if spec["kind"] == "linf":
        assert change.abs().max() <= spec["eps"] + 1e-6
    elif spec["kind"] == "l2":
        assert change.flatten(1).norm(dim=1).max() <= spec["eps"] + 1e-5
    elif spec["kind"] in ("brightness", "rotate"):
        assert abs(p["delta" if spec["kind"] == "brightness" else "angle"]) <= spec["max"]
    elif spec["kind"] == "contrast":
        assert abs(p["factor"] - 1) <= spec["max"] + 1e-12
    elif spec["kind"] == "translate":
        assert max(abs(p["dx"]), abs(p["dy"])) <= spec["max"]
    elif spec["kind"] == "occlusion":
        assert p["size"] <= spec["max"] and p["top"] + p["size"] <= 8 >= p["left"] + p["size"]
    else:
        assert 0 <= p["magnitude"] <= spec["sigma"]


def _strategy(spec: dict[str, Any]) -> st.SearchStrategy[Perturbation]:
    budget = {k: v for k, v in spec.items() if k != "kind"}
    return strategies.perturbations(spec["kind"], image_size=IMAGE_SIZE, **budget)


@pytest.mark.parametrize(
    ("kind", "budget", "message"),
    [
        ("blur", {"max": 1}, "unknown perturbation kind 'blur'"),
        ("l2", {}, "l2 needs eps"),
        ("gaussian", {"sigma": -1.0}, "must be a finite number >= 0"),
        ("rotate", {"max": 5, "eps": 1}, "rotate takes max, not eps"),
        ("occlusion", {"max": 2.5}, "whole number of pixels"),
        ("brightness", {"max": "0.1"}, "must be a number"),
    ],
)
def test_bad_budgets_are_refused(kind: str, budget: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        strategies.perturbations(kind, image_size=IMAGE_SIZE, **budget)


def test_the_spec_knows_every_kind() -> None:
    kinds = typing.get_args(fuzz.PerturbationSpec.model_fields["kind"].annotation)
    assert set(kinds) == set(strategies.KINDS)


def test_occlusion_needs_the_image_size() -> None:
    with pytest.raises(ValueError, match="image_size"):
        strategies.perturbations("occlusion", max=2)


def test_descriptions_read_well() -> None:
    chain = [
        Perturbation("brightness", {"delta": 0.2001}),
        Perturbation("linf", {"magnitude": 0.0, "seed": 3}),
        Perturbation("translate", {"dx": 1, "dy": -2}),
        Perturbation("occlusion", {"size": 3, "top": 2, "left": 5}),
    ]
    assert strategies.describe_all(chain) == (
        "brightness +0.2001, then shift by dx=+1, dy=-2 px, then 3x3 patch at row 2, col 5"
    )
