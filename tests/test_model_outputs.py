"""Models that return their logits inside an object, a dict or a tuple: every path that calls the
model (clean passes, attacks, ensembles, TorchScript) gets the logits, found automatically under
`logits` or named by `model.output`, and a clear error says what to set when none is found."""

from __future__ import annotations

import json
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

import robustness_checks
from robustness_checks.demo.digits import test_set
from robustness_checks.demo.model import digits_cnn
from robustness_checks.errors import ModelOutputError
from robustness_checks.examples import as_examples
from robustness_checks.execution.context import CheckContext
from robustness_checks.loading.factory import import_callable
from robustness_checks.loading.models import build_ensemble, build_model
from robustness_checks.spec.schema import ModelSource, ModelSpec

OUTPUTS = '''\
"""The demo CNN returning its logits inside an output of some kind."""

import dataclasses
from collections import OrderedDict
from typing import Any, NamedTuple

from torch import Tensor, nn

from robustness_checks.demo.model import digits_cnn


@dataclasses.dataclass
class Classified:
    """A plain dataclass with a `logits` field."""

    logits: Tensor
    pooled: Tensor


class ModelOutputLike(OrderedDict):
    """Like transformers' ModelOutput: an ordered dict whose keys are attributes too."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Pair(NamedTuple):
    logits: Tensor
    features: Tensor


class Scores:
    """An object whose logits are a property called `scores`."""

    def __init__(self, z):
        self._z = z

    @property
    def scores(self):
        return self._z


class Named(dict):
    """A dict whose logits are an attribute, not a key."""

    def __init__(self, z):
        super().__init__(n=3)
        self.scores = z


def hugging_face(z):
    from transformers.modeling_outputs import ImageClassifierOutput

    return ImageClassifierOutput(loss=None, logits=z, hidden_states=(z * 2,))


FORMS = {
    "hugging_face": hugging_face,
    "model_output": lambda z: ModelOutputLike(loss=z.sum(), logits=z),
    "dataclass": lambda z: Classified(z, z * 2),
    "dict": lambda z: {"features": z * 3, "logits": z, "n": 3},
    "namedtuple": lambda z: Pair(z, z * 2),
    "dict_scores": lambda z: {"scores": z, "features": z * 2},
    "property": Scores,
    "attribute_of_dict": Named,
    "tuple": lambda z: (z * 2, z),
    "tensor": lambda z: z,
}


class Wrapped(nn.Module):
    def __init__(self, kind, seed=0):
        super().__init__()
        self.net = digits_cnn(pretrained=True, seed=seed)
        self.kind = kind

    def forward(self, x) -> Any:
        return FORMS[self.kind](self.net(x))


def make_wrapped(kind, seed=0):
    return Wrapped(kind, seed)
'''


@pytest.fixture(scope="module")
def digits() -> tuple[Tensor, Tensor]:
    return test_set(limit=40)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with outputs.py, whose make_wrapped(kind, seed) is the model factory."""
    path = tmp_path_factory.mktemp("outputs")
    (path / "outputs.py").write_text(OUTPUTS)
    return path


@pytest.fixture(scope="module")
def make(folder: Path) -> Callable[..., nn.Module]:
    return import_callable("outputs.py:make_wrapped", folder)


AUTOMATIC = ["hugging_face", "model_output", "dataclass", "dict", "namedtuple"]
FACTORY = "outputs.py:make_wrapped"


@pytest.mark.parametrize("kind", AUTOMATIC)
def test_logits_are_found_automatically_by_every_check_path(
    digits: tuple[Tensor, Tensor], make: Callable[..., nn.Module], kind: str
) -> None:
    if kind == "hugging_face":
        pytest.importorskip("transformers")
    plain = digits_cnn(pretrained=True)
    wrapped = make(kind)
    context = CheckContext.create(wrapped, as_examples(digits), torch.device("cpu"), "c")
    with torch.no_grad():
        assert torch.equal(context.model(digits[0]), plain(digits[0]))
    for run in (
        lambda m, **k: robustness_checks.calibration(m, digits, bootstrap=10, **k),
        lambda m, **k: robustness_checks.adversarial(m, digits, eps=0.05, steps=2, **k),
        lambda m, **k: robustness_checks.entropy_trend(
            m, digits, eps=[0.0, 0.05], uncertainty={"method": "ensemble"}, **k
        ),
    ):
        expected = run(plain, ensemble=[plain, digits_cnn(pretrained=True, seed=1)])
        found = run(wrapped, ensemble=[wrapped, make(kind, seed=1)])
        assert found.value == expected.value
        assert found.outcome == expected.outcome


@pytest.mark.parametrize(
    ("kind", "output"),
    [
        ("hugging_face", "logits"),
        ("hugging_face", 0),  # a ModelOutput's own indexing: its first field that is not None
        ("model_output", "logits"),
        ("dict", "logits"),
        ("dataclass", "logits"),
        ("dict_scores", "scores"),
        ("property", "scores"),
        ("attribute_of_dict", "scores"),
        ("namedtuple", "logits"),
        ("namedtuple", 0),
        ("tuple", 1),
        ("tensor", "scores"),  # a model that returns the logits needs no selection
    ],
)
def test_model_output_names_any_key_index_or_attribute(
    folder: Path, digits: tuple[Tensor, Tensor], kind: str, output: str | int
) -> None:
    if kind == "hugging_face":
        pytest.importorskip("transformers")
    model = build_model(ModelSpec(factory=FACTORY, kwargs={"kind": kind}, output=output), folder)
    context = CheckContext.create(model, as_examples(digits), torch.device("cpu"), "c")
    with torch.no_grad():
        assert torch.equal(context.model(digits[0]), digits_cnn(pretrained=True)(digits[0]))


def test_ensemble_members_get_the_same_output_selection(folder: Path) -> None:
    spec = ModelSpec(
        factory=FACTORY,
        kwargs={"kind": "dict_scores"},
        output="scores",
        ensemble=[
            ModelSource(factory=FACTORY, kwargs={"kind": "dict_scores"}),
            ModelSource(factory=FACTORY, kwargs={"kind": "tensor", "seed": 2}),
        ],
    )
    first, second = build_ensemble(spec, folder)
    x = test_set(limit=5)[0]
    with torch.no_grad():
        assert torch.equal(first(x), digits_cnn(pretrained=True)(x))
        assert torch.equal(second(x), digits_cnn(pretrained=True, seed=2)(x))


def test_an_output_that_selects_no_tensor_says_what_it_holds(
    folder: Path, digits: tuple[Tensor, Tensor]
) -> None:
    model = build_model(ModelSpec(factory=FACTORY, kwargs={"kind": "dict"}, output="n"), folder)
    with pytest.raises(ModelOutputError) as caught:
        robustness_checks.calibration(model, digits)
    assert str(caught.value) == (
        "model.output is 'n', which holds an int object, not a logits tensor; the model "
        "returned a dict with keys 'features', 'logits', 'n'; it holds tensors under the keys "
        "('features', 'logits'): set model.output to the one that holds the logits, or from "
        "Python pass a model whose forward returns the logits (wrap it in an nn.Module whose "
        "forward returns model(x)['features'])"
    )


def test_a_dict_without_logits_names_its_keys_and_the_field_to_set(
    digits: tuple[Tensor, Tensor], make: Callable[..., nn.Module]
) -> None:
    with pytest.raises(ModelOutputError) as caught:
        robustness_checks.adversarial(make("dict_scores"), digits, eps=0.05, steps=2)
    assert str(caught.value) == (
        "the model returned a dict with keys 'scores', 'features', not a logits tensor; it holds "
        "tensors under the keys ('scores', 'features'): set model.output to the key that holds "
        "the logits, or from Python pass a model whose forward returns the logits (wrap it in "
        "an nn.Module whose forward returns model(x)['scores'])"
    )


def test_a_missing_attribute_lists_the_tensors_there_are(
    folder: Path, digits: tuple[Tensor, Tensor]
) -> None:
    spec = ModelSpec(factory=FACTORY, kwargs={"kind": "namedtuple"}, output="scores")
    with pytest.raises(ModelOutputError) as caught:
        robustness_checks.calibration(build_model(spec, folder), digits)
    assert str(caught.value).startswith(
        "model.output is 'scores', but the model returned a Pair of 2 items; it holds tensors "
        "at the indices (0 to 1): set model.output to one of them instead"
    )


class DictNet(nn.Module):
    """A TorchScript-able network returning Dict[str, Tensor] with the logits under 'logits'."""

    def __init__(self) -> None:
        super().__init__()
        self.net = digits_cnn(pretrained=True)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        z = self.net(x)
        return {"features": x.flatten(1), "logits": z}


@pytest.mark.parametrize("output", [None, "logits"])
def test_torchscript_dict_output(
    tmp_path: Path, digits: tuple[Tensor, Tensor], output: str | None
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in torch 2.14
        torch.jit.script(DictNet().eval()).save(str(tmp_path / "dict.ts"))
        model = build_model(ModelSpec(torchscript="dict.ts", output=output), tmp_path)
        result = robustness_checks.calibration(model, digits, bootstrap=10)
    expected = robustness_checks.calibration(digits_cnn(pretrained=True), digits, bootstrap=10)
    assert result.value == expected.value


def test_a_spec_run_reads_logits_from_a_dict(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("dict_model.py").write_text(
        textwrap.dedent(
            """
            from robustness_checks.demo.model import digits_cnn
            from torch import nn


            class DictOut(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.net = digits_cnn(pretrained=True)

                def forward(self, x):
                    return {"logits": self.net(x), "n": 3}


            def make():
                return DictOut()
            """
        )
    )
    pytester.makefile(
        ".robustness.yaml",
        spec="model: {factory: dict_model.py:make}\n"
        "data: {factory: robustness_checks.demo.digits:test_set, kwargs: {limit: 40}}\n"
        "checks:\n  - {name: pgd, type: adversarial, attack: {eps: 0.05, steps: 2}, "
        "min_accuracy: 0.0}\n",
    )
    result = pytester.runpytest("--robustness-json=out.json")
    result.assert_outcomes(passed=1)
    (record,) = json.loads((pytester.path / "out.json").read_text())["results"]
    x, y = test_set(limit=40)
    expected = robustness_checks.adversarial(
        digits_cnn(pretrained=True), (x, y), eps=0.05, steps=2, min_accuracy=0.0, name="pgd"
    )
    assert record["value"] == expected.value
