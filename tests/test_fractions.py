"""eps, sigma and step sizes written as fractions (8/255): read without eval, kept as written."""

from __future__ import annotations

import copy
import json
import pickle
import textwrap

import jsonschema
import pytest
import torch
import yaml

import robustness_checks
from robustness_checks.attacks import run_attack
from robustness_checks.attacks.arguments import as_eps_list
from robustness_checks.checks.registry import CHECK_TYPES
from robustness_checks.errors import SpecError
from robustness_checks.formatting import format_number
from robustness_checks.reporting.axes import short_label
from robustness_checks.spec.numbers import Written, read_number
from robustness_checks.spec.parse import parse_spec_text, validate_check
from robustness_checks.spec.schema import spec_json_schema

HEADER = """\
model: {factory: robustness_checks.demo.model:digits_cnn}
data: {factory: robustness_checks.demo.digits:test_set}
checks:
"""


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("8/255", 8 / 255),
        (" 8 / 255 ", 8 / 255),
        ("0.5/255", 0.5 / 255),
        ("1e-3", 0.001),
        ("2.5e-1/5", 0.05),
        ("+3/4", 0.75),
        (".5", 0.5),
        ("1/3", 1 / 3),
        ("0", 0.0),
    ],
)
def test_text_is_read_as_the_number_it_writes(text: str, value: float) -> None:
    number = read_number(text, "eps")
    assert number == value  # correctly rounded: 8/255 is Python's own 8 / 255
    assert isinstance(number, Written) and number.text == text.strip()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("8/256x", "eps '8/256x' is not a number or a fraction like 8/255"),
        ("__import__('os').getcwd()", "is not a number or a fraction like 8/255"),
        ("2**10", "'2**10' is not a number or a fraction like 8/255"),
        ("1/2/3", "'1/2/3' is not a number or a fraction like 8/255"),
        ("8/-255", "'8/-255' is not a number"),
        ("0x10", "'0x10' is not a number"),
        ("inf", "'inf' is not a number"),
        ("1e9999", "'1e9999' is not a number"),  # exponents have at most 3 digits
        ("1e999", "eps must be a finite number (got 1e999)"),
        ("1/0", "eps '1/0' divides by zero"),
        ("1" * 100, "is not a number or a fraction like 8/255"),
        (True, "eps must be a number, not true"),
        (float("nan"), "eps must be a finite number (got nan)"),
        ([1], "eps must be a number or a fraction like 8/255, not a list"),
    ],
)
def test_anything_else_is_refused_in_one_sentence(value: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        read_number(value, "eps")
    assert message in str(caught.value)


def test_a_written_number_computes_as_its_float_and_prints_as_written() -> None:
    eps = read_number("8/255")
    assert eps * 255 == pytest.approx(8.0) and type(eps * 2) is float and -eps == -8 / 255
    assert hash(eps) == hash(8 / 255) and eps in {8 / 255} and max(eps, 0.01) is eps
    assert (str(eps), repr(eps), f"{eps}", f"{eps:g}", f"{eps:.3g}") == ("8/255",) * 5
    assert f"{eps:>7}" == "  8/255" and f"{eps:.4f}" == "0.0314" and f"{[eps]}" == "[8/255]"
    assert format_number(eps) == "8/255" and short_label(eps) == "8/255"
    assert format_number(8 / 255) == "0.0314"
    assert json.dumps({"eps": eps}) == '{"eps": 0.03137254901960784}'
    assert torch.tensor([eps]).item() == pytest.approx(8 / 255)
    for copied in (pickle.loads(pickle.dumps(eps)), copy.deepcopy(eps)):
        assert copied == eps and copied.text == "8/255"


@pytest.mark.parametrize(
    ("entry", "path"),
    [
        ({"type": "adversarial", "attack": {"eps": "8/255"}}, ("attack", "eps")),
        ({"type": "adversarial", "attack": {"eps": ["8/255", 0.1]}}, ("attack", "eps", 0)),
        (
            {"type": "adversarial", "attack": {"eps": 0.1, "step_size": "8/255"}},
            ("attack", "step_size"),
        ),
        ({"type": "entropy_trend", "eps": [0, "8/255"]}, ("eps", 1)),
        ({"type": "noise", "sigma": "8/255"}, ("sigma",)),
        ({"type": "fuzz", "perturbations": [{"kind": "linf", "eps": "8/255"}]}, None),
        ({"type": "fuzz", "perturbations": [{"kind": "gaussian", "sigma": "8/255"}]}, None),
        ({"type": "fuzz", "perturbations": [{"kind": "brightness", "max": "8/255"}]}, None),
    ],
)
def test_every_eps_and_sigma_field_takes_a_fraction(entry: dict, path: tuple | None) -> None:
    check = validate_check({"name": "c", **entry})
    if path is None:
        budget = check.perturbations[0].budget()  # type: ignore[attr-defined]
        (value,) = budget.values()
    else:
        value = check
        for part in path:
            value = value[part] if isinstance(part, int) else getattr(value, part)
    assert value == 8 / 255 and str(value) == "8/255"
    dumped = json.dumps(check.model_dump(mode="json"))
    assert "8/255" not in dumped and "0.03137254901960784" in dumped


def test_a_fraction_is_the_same_setting_as_its_float() -> None:
    written = validate_check({"name": "c", "type": "adversarial", "attack": {"eps": "8/255"}})
    plain = validate_check({"name": "c", "type": "adversarial", "attack": {"eps": 8 / 255}})
    assert written.model_dump(mode="json") == plain.model_dump(mode="json")
    assert written.attack.describe()["written"] == {"eps": "8/255"}  # type: ignore[attr-defined]
    assert "written" not in plain.attack.describe()  # type: ignore[attr-defined]


def test_yaml_fractions_validate_and_satisfy_the_json_schema() -> None:
    text = HEADER + textwrap.indent(
        textwrap.dedent("""\
        - {name: a, type: adversarial, attack: {eps: [8/255, 16/255], step_size: 2/255}}
        - {name: t, type: entropy_trend, eps: [0, 4/255, 8/255]}
        - {name: n, type: noise, sigma: 0.5/255}
        """),
        "  ",
    )
    spec = parse_spec_text(text).spec
    assert [str(e) for e in spec.checks[0].attack.eps] == ["8/255", "16/255"]  # type: ignore[attr-defined]
    schema = spec_json_schema([entry.params for entry in CHECK_TYPES.values()])
    jsonschema.validate(yaml.safe_load(text), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(text.replace("8/255]", "8/256x]")), schema)


def test_a_bad_fraction_in_yaml_names_file_line_and_field() -> None:
    text = HEADER + "  - name: a\n    type: adversarial\n    attack: {eps: 8/256x}\n"
    with pytest.raises(SpecError) as caught:
        parse_spec_text(text, "bad.robustness.yaml")
    assert caught.value.render().splitlines()[1:] == [
        "  bad.robustness.yaml:6, check 'a', field 'attack.eps': eps '8/256x' is not a number "
        "or a fraction like 8/255"
    ]


class Threshold(torch.nn.Module):
    """Class 1 when the single input feature exceeds 0.5, with logits 10 (x - 0.5) apart."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        margin = 10 * (x[:, :1] - 0.5)
        return torch.cat([-margin, margin], dim=1)


# Distances to the boundary 0.01, 0.02, 0.1, 0.2: FGSM at eps fools exactly those below eps.
X = torch.tensor([[0.51], [0.48], [0.6], [0.3]])
Y = torch.tensor([1, 0, 1, 0])


def test_an_attack_at_a_fraction_measures_what_its_float_measures() -> None:
    options = {"method": "fgsm", "gradient_masking": "off", "max_drop": 0.4}
    written = robustness_checks.adversarial(Threshold(), (X, Y), eps=["8/255", "1/4"], **options)
    plain = robustness_checks.adversarial(Threshold(), (X, Y), eps=[8 / 255, 0.25], **options)
    assert written.details["adversarial_accuracy"] == plain.details["adversarial_accuracy"]
    assert written.details["adversarial_accuracy"] == [0.5, 0.0]
    assert written.fingerprints.check == plain.fingerprints.check  # type: ignore[union-attr]
    assert "under FGSM-Linf eps=1/4" in written.message
    assert "eps=0.25" in plain.message
    assert [str(row.eps) for row in written.details.per_eps] == ["8/255", "1/4"]  # type: ignore[union-attr]
    record = json.loads(json.dumps(written.to_dict()))
    assert record["details"]["eps"] == [8 / 255, 0.25]  # numbers in the results file
    assert record["details"]["attack"]["written"] == {"eps": ["8/255", "1/4"]}
    assert record["settings"]["check"]["attack"]["eps"] == [8 / 255, 0.25]


def test_entropy_trend_and_noise_messages_show_the_written_values() -> None:
    trend = robustness_checks.entropy_trend(
        Threshold(), (X, Y), eps=["0", "8/255", "1/4"], attack={"method": "fgsm"}
    )
    assert "at eps 0, 8/255, 1/4" in trend.message
    assert [str(e) for e in trend.details.eps] == ["0", "8/255", "1/4"]  # type: ignore[union-attr]
    noise = robustness_checks.noise(
        Threshold(), (X, Y), sigma="1/100", inputs=1, estimator="mc", max_evaluations=200
    )
    assert "sigma 1/100" in noise.message


def test_run_attack_takes_fractions_from_python() -> None:
    assert as_eps_list("8/255") == [8 / 255] and str(as_eps_list(["1/4", 0.5])[0]) == "1/4"
    result = run_attack(Threshold(), X, Y, method="fgsm", eps="1/4")
    assert result.eps == [0.25]
    with pytest.raises(ValueError, match="eps '8/256x' is not a number or a fraction"):
        run_attack(Threshold(), X, Y, method="fgsm", eps="8/256x")
