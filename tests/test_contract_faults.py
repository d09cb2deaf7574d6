"""Model and data contracts a user can get wrong: expanded input gradients, check names that are
not printable, Hugging Face style outputs, bool labels, layers still computing as in training."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import robustness_checks
from robustness_checks.__main__ import main
from robustness_checks.attacks import run_attack
from robustness_checks.demo.digits import test_set
from robustness_checks.demo.model import digits_cnn
from robustness_checks.errors import LoadError, ModelOutputError, SpecError
from robustness_checks.loading.data import build_data
from robustness_checks.loading.models import build_model
from robustness_checks.spec.parse import load_spec
from robustness_checks.spec.schema import DataSpec

HEADER = """\
model:
  factory: robustness_checks.demo.model:digits_cnn
data:
  factory: robustness_checks.demo.digits:test_set
  kwargs: {limit: 40}
checks:
"""


@pytest.fixture(scope="module")
def digits() -> tuple[Tensor, Tensor]:
    return test_set(limit=60)


@pytest.fixture(scope="module")
def demo() -> nn.Module:
    return digits_cnn(pretrained=True)


# --- 1. input gradients that are expanded tensors ---------------------------------------------


class SumClassifier(nn.Module):
    """Classifies (n, 4) inputs by their sum, which it broadcasts back over the features first,
    so the input gradient autograd returns is an expanded tensor (stride 0, overlapping memory).
    With `dense`, a hook makes the gradient an ordinary tensor of the same values."""

    def __init__(self, dense: bool = False) -> None:
        super().__init__()
        self.dense = dense
        self.centres = nn.Parameter(torch.tensor([1.0, 2.0, 3.0]), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.dense and x.requires_grad:
            x.register_hook(lambda grad: grad.clone(memory_format=torch.contiguous_format))
        total = x.sum(dim=1, keepdim=True).expand_as(x).mean(dim=1, keepdim=True)
        return -4.0 * (total - self.centres) ** 2


@pytest.fixture(scope="module")
def sums() -> tuple[Tensor, Tensor]:
    x = torch.rand(80, 4, generator=torch.Generator().manual_seed(0))
    y = x.sum(dim=1).round().clamp(1, 3).long() - 1
    return x, y


def test_the_sum_classifier_gives_an_expanded_input_gradient(sums: tuple[Tensor, Tensor]) -> None:
    x = sums[0].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(SumClassifier()(x).sum(), x)
    assert 0 in grad.stride()  # what made the L-inf step's in-place sign_() fail


@pytest.mark.parametrize("method", ["pgd", "fgsm", "apgd"])
@pytest.mark.parametrize("norm", ["inf", 2])
def test_attacks_run_on_an_expanded_input_gradient(
    sums: tuple[Tensor, Tensor], method: str, norm: str | int
) -> None:
    x, y = sums
    steps = 10 if method == "apgd" else 5

    def attack(model: nn.Module) -> robustness_checks.attacks.AttackResult:
        generator = torch.Generator().manual_seed(1)
        return run_attack(
            model, x, y, method=method, eps=[0.05, 0.2], norm=norm, steps=steps, generator=generator
        )

    expanded, dense = attack(SumClassifier()), attack(SumClassifier(dense=True))
    assert torch.equal(expanded.adversarial, dense.adversarial)
    assert torch.equal(expanded.success, dense.success)
    assert expanded.success[1].sum() > expanded.success[0].sum() > 0  # the attack does work


def test_adversarial_and_entropy_trend_checks_run_on_an_expanded_input_gradient(
    sums: tuple[Tensor, Tensor],
) -> None:
    def checks(model: nn.Module) -> list[robustness_checks.CheckResult]:
        return [
            robustness_checks.adversarial(model, sums, eps=[0.05, 0.2], steps=5, min_accuracy=0.0),
            robustness_checks.adversarial(
                model, sums, method="pgd", norm="2", eps=0.2, steps=5, min_accuracy=0.0
            ),
            robustness_checks.entropy_trend(
                model, sums, eps=[0.0, 0.05, 0.2], attack={"method": "pgd", "steps": 5}
            ),
        ]

    for expanded, dense in zip(
        checks(SumClassifier()), checks(SumClassifier(dense=True)), strict=True
    ):
        assert expanded.outcome in ("passed", "failed"), expanded.message
        assert expanded.message == dense.message
        assert expanded.details == dense.details
    pgd = checks(SumClassifier())[0]
    assert pgd.message.startswith("adversarial_accuracy = ")
    assert pgd.message.endswith("under PGD-Linf eps=0.2 meets min_accuracy 0 on 80 examples")


# --- 2. check names that are not printable ----------------------------------------------------

BAD_NAMES = {
    "bad\udc80name": "'bad\\udc80name' contains U+DC80 (a lone surrogate, which cannot be "
    "written as UTF-8) at position 3",
    "a\x1b[31mred": "'a\\x1b[31mred' contains '\\x1b' (a control character) at position 1",
    "tab\there": "'tab\\there' contains '\\t' (a control character) at position 3",
    "nul\x00x": "'nul\\x00x' contains '\\x00' (a control character) at position 3",
    "rtl\u202eevil": "'rtl\\u202eevil' contains U+202E (an invisible formatting character) at "
    "position 3",
}
ADVICE = (
    "check names are pytest ids, printed in terminals and reports, so they must be printable "
    "text; remove the character or replace it with '_'"
)


def _yaml_string(name: str) -> str:
    """`name` as a double-quoted YAML scalar with escapes for what is not printable."""
    return '"' + "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in name) + '"'


def test_unprintable_check_names_are_refused_in_spec_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = "".join(
        f"  - {{name: {_yaml_string(name)}, type: calibration}}\n" for name in BAD_NAMES
    )
    path = tmp_path / "names.robustness.yaml"
    path.write_text(HEADER + entries + "  - {name: naïve ✓ 名前 ok, type: calibration}\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert len(caught.value.problems) == len(BAD_NAMES)
    for line, (name, found) in enumerate(BAD_NAMES.items(), start=7):
        assert f"{path}:{line}, check {name!r}, field 'name': name {found}: {ADVICE}" in message, (
            message
        )
    assert main(["validate", str(path)]) == 1
    output = capsys.readouterr()
    shown = output.out + output.err
    shown.encode("utf-8")  # no lone surrogate reaches the terminal
    assert "\x1b" not in shown and "\x00" not in shown and "\t" not in shown
    assert len(shown.splitlines()) == 1 + len(BAD_NAMES)


@pytest.mark.parametrize("name", sorted(BAD_NAMES))
def test_unprintable_check_names_are_refused_from_python(
    demo: nn.Module, digits: tuple[Tensor, Tensor], name: str
) -> None:
    with pytest.raises(SpecError) as caught:
        robustness_checks.calibration(demo, digits, name=name)
    assert str(caught.value) == (
        f"invalid check arguments:\n  check {name!r}, field 'name': name {BAD_NAMES[name]}: "
        f"{ADVICE}"
    )


def test_printable_unicode_check_names_are_fine(
    demo: nn.Module, digits: tuple[Tensor, Tensor]
) -> None:
    result = robustness_checks.calibration(demo, digits, name="naïve ✓ 名前", bootstrap=10)
    assert result.check == "naïve ✓ 名前"


# --- 3. outputs with a .logits attribute ------------------------------------------------------


@dataclasses.dataclass
class Classified:
    """A model output in the style of transformers' SequenceClassifierOutput."""

    logits: Tensor
    hidden_states: Tensor | None = None


@dataclasses.dataclass
class Scored:
    """An output object without a `logits` attribute."""

    scores: Tensor
    hidden: Tensor
    note: str = "no tensor"


class ModelOutputLike(OrderedDict):
    """Like transformers' ModelOutput: an ordered dict whose keys are attributes too."""

    def __getattr__(self, name: str) -> Tensor:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Wrapped(nn.Module):
    """The demo CNN returning its logits inside an object of `kind`."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.net = digits_cnn(pretrained=True)
        self.kind = kind

    def forward(self, x: Tensor) -> object:
        z = self.net(x)
        if self.kind == "dataclass":
            return Classified(z, z * 2)
        if self.kind == "model_output":
            return ModelOutputLike(loss=z.sum(), logits=z)
        return Scored(z, z * 2)


@pytest.mark.parametrize("kind", ["dataclass", "model_output"])
def test_outputs_with_a_logits_attribute_are_read_as_logits(
    demo: nn.Module, digits: tuple[Tensor, Tensor], kind: str
) -> None:
    plain = robustness_checks.calibration(demo, digits, bootstrap=10)
    wrapped = robustness_checks.calibration(Wrapped(kind), digits, bootstrap=10)
    assert wrapped.value == plain.value
    attacked = robustness_checks.adversarial(Wrapped(kind), digits, eps=0.05, steps=2)
    assert attacked.value == robustness_checks.adversarial(demo, digits, eps=0.05, steps=2).value


SCORED_OFFER = (
    "it holds tensors in the attributes ('scores', 'hidden'): {action}, or from Python pass a "
    "model whose forward returns the logits (wrap it in an nn.Module whose forward returns "
    "model(x).scores)"
)


def test_an_output_object_without_logits_lists_its_tensor_attributes(
    digits: tuple[Tensor, Tensor],
) -> None:
    with pytest.raises(ModelOutputError) as caught:
        robustness_checks.calibration(Wrapped("scored"), digits)
    action = "set model.output to the attribute that holds the logits"
    assert str(caught.value) == (
        "the model returned a Scored object, not a logits tensor; "
        + SCORED_OFFER.format(action=action)
    )


def test_dict_and_tuple_outputs_list_their_tensor_keys_and_indices(
    digits: tuple[Tensor, Tensor],
) -> None:
    class Dict(nn.Module):
        def forward(self, x: Tensor) -> dict[str, object]:
            return {"scores": x.flatten(1)[:, :10], "n": 3}

    class Pair(nn.Module):
        def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
            return x.flatten(1)[:, :10], x.flatten(1)

    with pytest.raises(ModelOutputError) as caught:
        robustness_checks.calibration(Dict(), digits)
    assert str(caught.value) == (
        "the model returned a dict with keys 'scores', 'n', not a logits tensor; it holds "
        "tensors under the keys ('scores'): set model.output to the key that holds the logits, "
        "or from Python pass a model whose forward returns the logits (wrap it in an nn.Module "
        "whose forward returns model(x)['scores'])"
    )
    with pytest.raises(
        ModelOutputError, match=r"holds tensors at the indices \(0 to 1\): set model"
    ):
        robustness_checks.calibration(Pair(), digits)


WRAPPED_SOURCE = """\
import dataclasses

import torch

from robustness_checks.demo.model import digits_cnn


@dataclasses.dataclass
class Scored:
    scores: torch.Tensor
    hidden: torch.Tensor


@dataclasses.dataclass
class Classified:
    logits: torch.Tensor


class Wrapped(torch.nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.net, self.kind = digits_cnn(pretrained=True), kind

    def forward(self, x):
        z = self.net(x)
        return Classified(z) if self.kind == "dataclass" else Scored(z, z * 2)


def make_wrapped(kind="scored"):
    return Wrapped(kind)
"""


def _run_spec(tmp_path: Path, model_block: str) -> robustness_checks.CheckResult:
    (tmp_path / "wrapped.py").write_text(WRAPPED_SOURCE)
    spec = tmp_path / "out.robustness.yaml"
    spec.write_text(
        f"model: {model_block}\n"
        "data: {factory: robustness_checks.demo.digits:test_set, kwargs: {limit: 50}}\n"
        "checks: [{name: c, type: calibration, max: 0.5, bootstrap: 10}]\n"
    )
    document = load_spec(spec)
    model = build_model(document.spec.model, document.base_dir)
    data = test_set(limit=50)
    return robustness_checks.calibration(model, data, max=0.5, bootstrap=10)


def test_spec_output_field_selects_an_attribute(tmp_path: Path) -> None:
    result = _run_spec(tmp_path, "{factory: wrapped.py:make_wrapped, output: scores}")
    assert result.passed, result.message
    dataclass = _run_spec(tmp_path, "{factory: wrapped.py:make_wrapped, kwargs: {kind: dataclass}}")
    assert dataclass.value == result.value
    with pytest.raises(ModelOutputError) as caught:
        _run_spec(tmp_path, "{factory: wrapped.py:make_wrapped, output: score}")
    assert str(caught.value) == (
        "model.output is 'score', but the model returned a Scored object; "
        + SCORED_OFFER.format(action="set model.output to one of them instead")
    )


# --- 4. bool labels -----------------------------------------------------------------------------

BOOL_MESSAGE = (
    "the labels (y) are booleans (torch.bool), not class indices; they would silently count as "
    "classes 0 (False) and 1 (True). Store y as int64 class indices (y.long() if False and True "
    "really are classes 0 and 1)"
)


def test_bool_labels_are_refused_from_python(demo: nn.Module) -> None:
    x, y = test_set(limit=40)
    for data in [(x, y > 4), (x, (y > 4).numpy())]:
        with pytest.raises(LoadError) as caught:
            robustness_checks.calibration(demo, data)
        assert str(caught.value) == BOOL_MESSAGE
    dataset = torch.utils.data.TensorDataset(x, y > 4)
    with pytest.raises(LoadError, match=r"the labels \(y\) are booleans"):
        robustness_checks.calibration(demo, dataset)


@pytest.mark.parametrize("suffix", [".pt", ".npz"])
def test_bool_labels_are_refused_in_data_files(tmp_path: Path, suffix: str) -> None:
    x, y = test_set(limit=40)
    path = tmp_path / f"data{suffix}"
    if suffix == ".pt":
        torch.save({"x": x, "y": y > 4}, path)
    else:
        np.savez(path, x=x.numpy(), y=(y > 4).numpy())
    with pytest.raises(LoadError) as caught:
        build_data(DataSpec(tensors=path.name), tmp_path)
    assert str(caught.value) == f"data file {path}: {BOOL_MESSAGE}"


def test_check_labels_refuses_bool_labels() -> None:
    from robustness_checks.execution.contracts import check_labels

    with pytest.raises(LoadError, match=r"are booleans"):
        check_labels(torch.tensor([True, False]), 2)


# --- 5. layers still computing as in training after eval() ------------------------------------


def mlp(norm: nn.Module | None = None) -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Flatten(), nn.Linear(64, 32)]
    layers += [norm] if norm is not None else []
    return nn.Sequential(*layers, nn.ReLU(), nn.Linear(32, 10))


class FunctionalDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = mlp()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(F.dropout(x, 0.3, training=True))


class StaysInTraining(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = mlp(nn.BatchNorm1d(32))

    def train(self, mode: bool = True) -> StaysInTraining:
        return super().train(True)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class TrainsItself(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = mlp(nn.BatchNorm1d(32))

    def forward(self, x: Tensor) -> Tensor:
        self.train()
        return self.net(x)


BATCH_NORM_WITHOUT_STATISTICS = (
    "the model's module '2' (BatchNorm1d) has no running statistics (track_running_stats=False): "
    "even in eval mode, batch normalisation there uses each batch's own statistics, so results "
    "change with batch_size and with which examples share a batch. Build it with "
    "track_running_stats=True and train it, or use a normalisation that does not depend on the "
    "batch (GroupNorm, LayerNorm)"
)
FUNCTIONAL_DROPOUT = (
    "the model's forward pass calls torch.nn.functional.dropout(..., p=0.3, training=True) "
    "although the model is in eval mode, so it zeroes random activations at every call: the "
    "model is random and checks treat it as such. If that is not meant, pass "
    "training=self.training (F.dropout(x, p, training=self.training)), or use an nn.Dropout "
    "module, which model.eval() switches off"
)


def test_batch_norm_without_running_statistics_is_a_warning(
    digits: tuple[Tensor, Tensor],
) -> None:
    model = mlp(nn.BatchNorm1d(32, track_running_stats=False))
    with pytest.warns(robustness_checks.RobustnessWarning, match="has no running statistics"):
        result = robustness_checks.calibration(model, digits, bootstrap=10)
    assert result.warnings == [BATCH_NORM_WITHOUT_STATISTICS]
    assert result.evaluations == 60


def test_functional_dropout_is_a_warning(digits: tuple[Tensor, Tensor]) -> None:
    with pytest.warns(robustness_checks.RobustnessWarning):
        result = robustness_checks.calibration(FunctionalDropout(), digits, bootstrap=10)
    assert result.warnings[1:] == [FUNCTIONAL_DROPOUT]
    assert result.warnings[0].startswith("the model is random: two passes over the same 32")
    assert result.evaluations == 60
    with pytest.warns(robustness_checks.RobustnessWarning):
        attacked = robustness_checks.adversarial(FunctionalDropout(), digits, eps=0.05, steps=2)
    assert FUNCTIONAL_DROPOUT in attacked.warnings
    # A random model: 20 draws per query (clean pass, 2 steps, last point), then 32 fresh draws
    # judge the clean inputs and the kept points.
    assert attacked.details["random_model"].as_json() == {
        "eot": 20,
        "draws": 32,
        "accuracy": "expected",
    }
    assert attacked.evaluations == 60 * (20 * 4 + 32 * 2)


def test_modules_kept_in_training_and_forward_calling_train_are_warnings(
    digits: tuple[Tensor, Tensor],
) -> None:
    with pytest.warns(robustness_checks.RobustnessWarning):
        stays = robustness_checks.calibration(StaysInTraining(), digits, bootstrap=10)
    assert [w.split(" is still in training mode")[0] for w in stays.warnings] == [
        "the model itself (StaysInTraining)",
        "the model's module 'net.2' (BatchNorm1d)",
    ]
    with pytest.warns(robustness_checks.RobustnessWarning):
        trains = robustness_checks.calibration(TrainsItself(), digits, bootstrap=10)
    assert trains.warnings == [
        "the model's forward pass switched the model itself (TrainsItself) and its module "
        "'net.2' (BatchNorm1d) into training mode (does forward call self.train()?): from then "
        "on batch normalisation uses each batch's own statistics and dropout is random, so "
        "results change with batch_size and from run to run. Remove that call: checks put the "
        "model in eval mode themselves"
    ]


def test_the_demo_model_and_mc_dropout_give_no_warning(
    demo: nn.Module, digits: tuple[Tensor, Tensor]
) -> None:
    assert robustness_checks.calibration(demo, digits, bootstrap=10).warnings == []
    assert robustness_checks.adversarial(demo, digits, eps=0.05, steps=2).warnings == []
    dropout = nn.Sequential(*mlp()[:3], nn.Dropout(0.2), mlp()[3]).eval()
    sampled = robustness_checks.selective(
        dropout,
        digits,
        coverage=0.5,
        min_accuracy=0.0,
        uncertainty={"method": "mc_dropout", "samples": 4},
        bootstrap=10,
    )
    assert sampled.warnings == []


def test_watching_the_first_pass_leaves_model_and_counts_alone(
    digits: tuple[Tensor, Tensor],
) -> None:
    model = StaysInTraining()  # its batch norm's running statistics move at every pass
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.warns(robustness_checks.RobustnessWarning):
        result = robustness_checks.calibration(model, digits, bootstrap=10, batch_size=60)
    assert result.evaluations == 60
    after = model.state_dict()
    # One forward pass of the check itself moved them; the watch added none.
    key = "net.2.num_batches_tracked"
    assert int(after[key]) == int(before[key]) + 1
    assert "forward" not in vars(model)
