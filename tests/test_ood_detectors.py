"""Feature-based OOD detectors against pytorch-ood and known answers; feature taps; msp ties."""

from __future__ import annotations

import io
import json
import textwrap
import warnings

import numpy as np
import pytest
import torch
import torchvision
from sklearn.metrics import roc_auc_score
from torch import nn

import robustness_checks
from robustness_checks.demo.digits import HELD_OUT_CLASSES, KNOWN_CLASSES, test_set, train_set
from robustness_checks.demo.model import digits_cnn_known_classes
from robustness_checks.errors import RobustnessError
from robustness_checks.loading.models import Normalized
from robustness_checks.uncertainty import detectors

pytest_plugins = ["pytester"]

CLASSES, SIZE, FIT, QUERIES = 4, 12, 400, 150


def gaussian_features(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(fit features, fit labels, query features): correlated Gaussian class clusters, float32."""
    generator = torch.Generator().manual_seed(seed)
    mix = torch.randn(SIZE, SIZE, generator=generator) / SIZE**0.5 + torch.eye(SIZE)
    means = 3 * torch.randn(CLASSES, SIZE, generator=generator)
    labels = torch.arange(FIT) % CLASSES
    fit = means[labels] + torch.randn(FIT, SIZE, generator=generator) @ mix
    queries = 2 * torch.randn(QUERIES, SIZE, generator=generator) @ mix
    return fit, labels, queries


def linear_head(seed: int = 1) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(SIZE, CLASSES).double()


def as_float64(values: torch.Tensor) -> np.ndarray:
    return values.detach().double().cpu().numpy()


# --- each detector against pytorch-ood on the same features -------------------------------


def test_mahalanobis_and_relative_equal_pytorch_ood() -> None:
    pytorch_ood = pytest.importorskip("pytorch_ood.detector")
    fit, labels, queries = gaussian_features()
    model = detectors.fit_gaussians(fit, labels)
    theirs = pytorch_ood.Mahalanobis(None).fit_features(fit, labels)
    # pytorch-ood (float32): half the squared distance under the inverse of the unnormalised
    # scatter matrix (n times the covariance) plus 1e-6 I: ours = 2 n theirs up to rounding.
    np.testing.assert_allclose(
        as_float64(detectors.mahalanobis_score(model, queries)),
        2 * FIT * as_float64(theirs.predict_features(queries)),
        rtol=1e-4,
    )
    relative = pytorch_ood.RMD(None).fit_features(fit, labels)
    np.testing.assert_allclose(
        as_float64(
            detectors.relative_mahalanobis_score(model, detectors.fit_background(fit), queries)
        ),
        FIT * as_float64(relative.predict_features(queries)),
        rtol=1e-4,
        atol=1e-3,
    )


def test_knn_equals_pytorch_ood() -> None:
    pytorch_ood = pytest.importorskip("pytorch_ood.detector")
    fit, labels, queries = gaussian_features()
    theirs = pytorch_ood.KNN(None, k=7).fit_features(fit, labels).predict_features(queries)
    ours = detectors.knn_score(detectors.normalised(fit), queries, 7)
    np.testing.assert_allclose(as_float64(ours), as_float64(theirs), rtol=1e-5)


def test_vim_equals_pytorch_ood() -> None:
    pytorch_ood = pytest.importorskip("pytorch_ood.detector")
    fit, labels, queries = gaussian_features()
    head = linear_head()
    weight, bias = head.weight.detach(), head.bias.detach()
    theirs = pytorch_ood.ViM(None, d=5, w=weight, b=bias).fit_features(fit.double(), labels)
    model = detectors.fit_vim(fit, weight, bias, 5)
    assert model.alpha == pytest.approx(theirs.alpha, rel=1e-5)
    np.testing.assert_allclose(
        as_float64(detectors.vim_score(model, queries, weight, bias)),
        as_float64(theirs.predict_features(queries.double())),
        rtol=1e-5,
        atol=1e-4,  # pytorch-ood computes in float32
    )


def test_react_ash_and_max_logit_equal_pytorch_ood() -> None:
    pytorch_ood = pytest.importorskip("pytorch_ood.detector")
    fit, labels, queries = gaussian_features()
    fit, queries = fit.relu().double(), queries.relu().double()  # post-ReLU activations
    head = linear_head()
    weight, bias = head.weight.detach(), head.bias.detach()
    react = pytorch_ood.ReAct(nn.Identity(), head, percentile=0.9).fit_feature_maps(fit, labels)
    threshold = detectors.react_threshold(fit, 90.0)
    assert threshold == pytest.approx(react.threshold)
    np.testing.assert_allclose(
        as_float64(detectors.react_score(queries, weight, bias, threshold)),
        as_float64(react.predict_feature_maps(queries)),
        rtol=1e-10,
    )
    # pytorch-ood's ASH works on (n, c, h, w) maps; a (n, d, 1, 1) map is our feature vector.
    ash = pytorch_ood.ASH(nn.Identity(), nn.Sequential(nn.Flatten(), head), percentile=0.65)
    np.testing.assert_allclose(
        as_float64(detectors.ash_score(queries, weight, bias, 65.0)),
        as_float64(ash.predict_feature_maps(queries[:, :, None, None])),
        rtol=1e-10,
    )
    logits = queries @ weight.T + bias
    np.testing.assert_array_equal(
        as_float64(detectors.max_logit_score(logits)),
        as_float64(pytorch_ood.MaxLogit.score(logits)),
    )


# --- known answers and invariances ---------------------------------------------------------


def test_mahalanobis_on_gaussian_clusters_with_a_known_answer() -> None:
    """Fit data with exact class means and covariance L L^T: distance of mu_c + L u is ||u||^2."""
    generator = torch.Generator().manual_seed(2)
    size = 6
    root = torch.randn(size, size, generator=generator, dtype=torch.float64) + 2 * torch.eye(
        size, dtype=torch.float64
    )
    means = 50 * torch.eye(3, size, dtype=torch.float64)
    # mu_c +- sqrt(d) L e_j for every j: sample mean mu_c, sample covariance exactly L L^T.
    steps = size**0.5 * torch.cat([root.T, -root.T])
    fit = torch.cat([mean + steps for mean in means])
    labels = torch.arange(3).repeat_interleave(2 * size)
    model = detectors.fit_gaussians(fit, labels)
    offsets = torch.randn(20, size, generator=generator, dtype=torch.float64)
    queries = means[1] + offsets @ root.T
    np.testing.assert_allclose(
        as_float64(detectors.mahalanobis_score(model, queries)),
        as_float64(offsets.square().sum(dim=1)),
        rtol=1e-9,
    )


def test_knn_is_invariant_to_feature_scale() -> None:
    fit, _, queries = gaussian_features()
    scores = detectors.knn_score(detectors.normalised(fit), queries, 10)
    row_scales = torch.rand(len(queries), 1) * 100 + 0.01
    scaled = detectors.knn_score(detectors.normalised(1e3 * fit), row_scales * queries, 10)
    torch.testing.assert_close(scaled, scores)


class FixedLogits(nn.Module):
    """Stored logits for each input; an input is its index."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.register_buffer("table", logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x[:, 0].round().long()]


def test_msp_does_not_tie_for_confident_inputs() -> None:
    generator = torch.Generator().manual_seed(5)
    margins = torch.cat([20 + 10 * torch.rand(120, generator=generator), 17 + 8 * torch.rand(80)])
    logits = torch.zeros(200, 3)
    logits[:, 0] = margins  # float32 softmax is exactly 1 for every one of them
    assert bool((logits.softmax(dim=1).amax(dim=1) == 1).all())
    x = torch.arange(200, dtype=torch.float32)[:, None]
    result = robustness_checks.ood(
        FixedLogits(logits), (x[:120], torch.zeros(120, dtype=torch.long)), x[120:], bounds=None
    )
    truth = np.r_[np.zeros(120), np.ones(80)]
    float64_msp = 1 - logits.double().softmax(dim=1).amax(dim=1).numpy()
    assert result.value == pytest.approx(roc_auc_score(truth, float64_msp), abs=1e-12)
    assert result.value != pytest.approx(0.5)  # float32 1 - max softmax ties at 0: 0.5


# --- features read from real networks ------------------------------------------------------


@pytest.fixture(scope="module")
def near_ood() -> dict:
    return {
        "model": digits_cnn_known_classes(),
        "data": test_set(limit=120, classes=KNOWN_CLASSES),
        "ood": test_set(limit=80, classes=HELD_OUT_CLASSES)[0],
        "fit": train_set(classes=KNOWN_CLASSES),
    }


def test_default_features_are_the_last_linear_input(near_ood: dict) -> None:
    common = dict(score="knn", k=10, bounds=None, bootstrap=0)
    default = robustness_checks.ood(
        near_ood["model"], near_ood["data"], near_ood["ood"], fit_data=near_ood["fit"], **common
    )
    named = robustness_checks.ood(
        near_ood["model"],
        near_ood["data"],
        near_ood["ood"],
        fit_data=near_ood["fit"],
        features="classifier.3",  # the ReLU that feeds the last Linear (dropout is off)
        **common,
    )
    assert default.details["features"] == "input of classifier.5"
    assert named.details["features"] == "classifier.3"
    assert default.value == named.value and default.details["feature_size"] == 64
    assert default.evaluations == 120 + 80 + len(near_ood["fit"][0])


def test_a_bad_module_path_lists_the_available_ones(near_ood: dict) -> None:
    with pytest.raises(RobustnessError) as caught:
        robustness_checks.ood(
            near_ood["model"],
            near_ood["data"],
            near_ood["ood"],
            score="mahalanobis",
            fit_data=near_ood["fit"],
            features="classifer.3",
        )
    message = str(caught.value)
    assert "no module 'classifer.3'" in message and "Did you mean 'classifier.3'" in message
    assert "features.0 (Conv2d)" in message and "classifier.5 (Linear)" in message


def test_feature_scores_refuse_logit_only_settings(near_ood: dict) -> None:
    with pytest.raises(ValueError, match="features is read only by the feature scores"):
        robustness_checks.ood(near_ood["model"], near_ood["data"], near_ood["ood"], features="x")
    with pytest.raises(ValueError, match="reads one forward pass"):
        robustness_checks.ood(
            near_ood["model"],
            near_ood["data"],
            near_ood["ood"],
            score="vim",
            uncertainty={"method": "mc_dropout"},
        )


def test_torchvision_resnet_layer4_through_a_wrapper_equals_fc_input() -> None:
    torch.manual_seed(0)
    network = torchvision.models.resnet18(num_classes=4).eval()
    model = Normalized(network, [0.5] * 3, [0.25] * 3)
    x = torch.rand(24, 3, 16, 16)
    data, fit = (x[:12], torch.zeros(12, dtype=torch.long)), (x, torch.arange(24) % 4)
    ood = torch.rand(10, 3, 16, 16)
    values = {
        features: robustness_checks.ood(
            model,
            data,
            ood,
            score="relative_mahalanobis",
            fit_data=fit,
            features=features,
            bounds=None,
            bootstrap=0,
        )
        for features in (None, "layer4", "network.layer4")
    }
    assert values["layer4"].details["features"] == "layer4"
    assert values["network.layer4"].details["features"] == "layer4"
    assert values[None].details["features"] == "input of fc"
    assert values[None].value == pytest.approx(values["layer4"].value)
    assert values["network.layer4"].value == values["layer4"].value


def test_torchscript_features_equal_the_python_model(near_ood: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", FutureWarning
        )  # torch.jit is deprecated in favour of export
        buffer = io.BytesIO()
        torch.jit.save(torch.jit.script(near_ood["model"]), buffer)
        buffer.seek(0)
        scripted = torch.jit.load(buffer)
    common = dict(fit_data=near_ood["fit"], bounds=None, bootstrap=0)
    for score, features in [("mahalanobis", None), ("vim", None), ("knn", "features")]:
        python = robustness_checks.ood(
            near_ood["model"],
            near_ood["data"],
            near_ood["ood"],
            score=score,
            features=features,
            **common,
        )
        script = robustness_checks.ood(
            scripted, near_ood["data"], near_ood["ood"], score=score, features=features, **common
        )
        assert script.value == pytest.approx(python.value, abs=1e-9), score
        assert script.details["features"] == python.details["features"]
    assert script.evaluations == 120 + 80 + len(near_ood["fit"][0])
    with pytest.raises(RobustnessError, match="Its module paths"):
        robustness_checks.ood(
            scripted, near_ood["data"], near_ood["ood"], score="knn", features="nope", **common
        )
    # TorchScript compiles one forward per class: the ReLUs share theirs, so one cannot be tapped.
    with pytest.raises(RobustnessError, match=r"shares its compiled code with features\.1"):
        robustness_checks.ood(
            scripted,
            near_ood["data"],
            near_ood["ood"],
            score="knn",
            features="classifier.3",
            **common,
        )


# --- a spec with features and fit_data through pytest --------------------------------------

SPEC = """\
model:
  factory: robustness_checks.demo.model:digits_cnn_known_classes
data:
  factory: robustness_checks.demo.digits:test_set
  kwargs: {limit: 100, classes: [0, 1, 2, 3, 4, 5]}
checks:
  - name: mahalanobis-near-ood
    type: ood
    ood_data:
      factory: robustness_checks.demo.digits:test_set
      kwargs: {limit: 60, classes: [6, 7, 8, 9]}
    fit_data:
      factory: robustness_checks.demo.digits:train_set
      kwargs: {classes: [0, 1, 2, 3, 4, 5]}
    features: classifier.3
    score: mahalanobis
    min: 0.5
  - name: relative-near-ood
    type: ood
    ood_data:
      factory: robustness_checks.demo.digits:test_set
      kwargs: {limit: 60, classes: [6, 7, 8, 9]}
    fit_data:
      factory: robustness_checks.demo.digits:train_set
      kwargs: {classes: [0, 1, 2, 3, 4, 5]}
    features: classifier.3
    score: relative_mahalanobis
    min: 0.5
  - name: wrong-layer
    type: ood
    ood_data:
      factory: robustness_checks.demo.digits:test_set
      kwargs: {limit: 60, classes: [6, 7, 8, 9]}
    fit_data:
      factory: robustness_checks.demo.digits:train_set
      kwargs: {classes: [0, 1, 2, 3, 4, 5]}
    features: layer4
    score: knn
    min: 0.5
"""


def test_a_spec_with_features_and_fit_data_runs_and_fits_once(pytester: pytest.Pytester) -> None:
    pytester.makefile(".robustness.yaml", near=textwrap.dedent(SPEC))
    result = pytester.runpytest("-p", "no:cacheprovider", "--robustness-json=out.json")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*no module 'layer4'*classifier.5 (Linear)*"])
    records = {
        r["check"]: r for r in json.loads((pytester.path / "out.json").read_text())["results"]
    }
    first, second = records["mahalanobis-near-ood"], records["relative-near-ood"]
    assert first["details"]["features"] == "classifier.3"
    assert first["details"]["fit_cached"] is False and second["details"]["fit_cached"] is True
    fit = len(train_set(classes=KNOWN_CLASSES)[0])
    # The second check reuses the fit and the features of the test and OOD data as well.
    assert first["evaluations"] == 160 + fit and second["evaluations"] == 0
    assert first["details"]["fit_examples"] == fit and first["value"] > 0.8
