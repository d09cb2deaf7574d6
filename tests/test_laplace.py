"""Last-layer Laplace against laplace-torch and a brute-force GGN on a toy 3-class MLP."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

import robustness_checks
from robustness_checks.checks.common.scoring import UncertaintySpec
from robustness_checks.uncertainty.laplace import fit_laplace
from robustness_checks.uncertainty.samplers import (
    expected_entropy,
    mutual_information,
    predictive_entropy,
    predictive_samples,
)

CENTERS = torch.tensor([[2.0, 0.0], [-2.0, 1.0], [0.0, -2.0]])
PRIOR = 0.7


def blobs(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(3).repeat_interleave(count)
    return CENTERS[y] + 0.6 * torch.randn(3 * count, 2, generator=generator), y


@pytest.fixture(scope="module")
def toy() -> dict:
    torch.manual_seed(0)
    x, y = blobs(40, 1)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3)).double()
    optimiser = torch.optim.Adam(model.parameters(), 0.05)
    for _ in range(300):
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(x.double()), y).backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        phi = model[:2](x.double())
    test = 4 * torch.randn(50, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        phi_test = model[:2](test)
    return {"model": model, "x": x, "y": y, "phi": phi, "test": test, "phi_test": phi_test}


def _fit(toy: dict, hessian: str, **options: object):
    head = toy["model"][2]
    return fit_laplace(toy["phi"], head.weight, head.bias, toy["y"], hessian=hessian, **options)


@pytest.mark.parametrize("hessian", ["kron", "diag"])
def test_equals_laplace_torch(toy: dict, hessian: str) -> None:
    laplace = pytest.importorskip("laplace")
    reference = laplace.Laplace(
        toy["model"],
        "classification",
        subset_of_weights="last_layer",
        hessian_structure=hessian,
        prior_precision=PRIOR,
    )
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(toy["x"].double(), toy["y"]), batch_size=len(toy["y"])
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.fit(loader)
        f_mu, f_var = reference._glm_predictive_distribution(toy["test"])
        probit = reference(toy["test"], pred_type="glm", link_approx="probit")
        grid = (0.01, 0.1, 1.0, 10.0, 100.0)
        reference_ml = [float(reference.log_marginal_likelihood(torch.tensor(d))) for d in grid]
    mine = _fit(toy, hessian, prior_precision=PRIOR)
    mean, covariance = mine.logits_mean_and_covariance(toy["phi_test"])
    assert float(f_var.abs().max()) > 1.0  # far inputs: a large functional variance
    torch.testing.assert_close(mean, f_mu.double(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(covariance, f_var.double(), rtol=1e-8, atol=1e-9)
    torch.testing.assert_close(mine.probit(toy["phi_test"]), probit.double(), rtol=0, atol=1e-7)
    searched = _fit(toy, hessian, grid=grid)
    assert [value for _, value in searched.grid] == pytest.approx(reference_ml, rel=1e-6)
    assert searched.prior_precision == grid[max(range(5), key=reference_ml.__getitem__)]


def test_diag_equals_brute_force_ggn(toy: dict) -> None:
    head = toy["model"][2]
    phi = toy["phi"]
    theta = torch.cat([head.weight.detach().flatten(), head.bias.detach()])
    k, d = head.weight.shape

    def logits(params: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return features @ params[: k * d].reshape(k, d).T + params[k * d :]

    jacobian = torch.func.vmap(torch.func.jacrev(logits), in_dims=(None, 0))(theta, phi[:, None])
    jacobian = jacobian[:, 0]  # (n, K, P)
    p = logits(theta, phi).softmax(dim=-1)
    lam = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    ggn = torch.einsum("nkp,nkl,nlq->pq", jacobian, lam, jacobian)
    posterior = torch.linalg.inv(
        torch.diag(torch.diagonal(ggn)) + PRIOR * torch.eye(len(theta), dtype=torch.float64)
    )
    phi_test = toy["phi_test"]
    test_jacobian = torch.func.vmap(torch.func.jacrev(logits), in_dims=(None, 0))(
        theta, phi_test[:, None]
    )[:, 0]
    expected = test_jacobian @ posterior @ test_jacobian.transpose(1, 2)
    _, covariance = _fit(toy, "diag", prior_precision=PRIOR).logits_mean_and_covariance(phi_test)
    torch.testing.assert_close(covariance, expected, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("hessian", ["kron", "diag"])
def test_samples_match_the_linearised_predictive(toy: dict, hessian: str) -> None:
    posterior = _fit(toy, hessian, prior_precision=PRIOR)
    phi = toy["phi_test"][:5]
    generator = torch.Generator().manual_seed(3)
    draws = [posterior.sample_weights(generator) for _ in range(20_000)]
    f = torch.stack([phi @ w.T + b for w, b in draws])  # (T, n, K)
    mean, covariance = posterior.logits_mean_and_covariance(phi)
    centred = f - f.mean(dim=0)
    empirical = torch.einsum("tnk,tnl->nkl", centred, centred) / (len(draws) - 1)
    scale = covariance.abs().amax(dim=(1, 2), keepdim=True)
    assert float(((f.mean(dim=0) - mean).abs() / scale.squeeze(-1).sqrt()).max()) < 0.05
    assert float(((empirical - covariance).abs() / scale).max()) < 0.05


def test_uncertainty_grows_away_from_the_data(toy: dict) -> None:
    model = copy.deepcopy(toy["model"]).float()
    posterior = _fit(toy, "kron")
    assert 1e-4 <= posterior.prior_precision <= 1e4
    near, _ = blobs(20, 7)
    far = torch.tensor([[12.0, 12.0], [-12.0, 12.0], [12.0, -12.0], [-12.0, -12.0]])
    options = {"method": "laplace", "samples": 200, "laplace": posterior, "generator_seed": 4}
    on = predictive_samples(model, near, **options)
    off = predictive_samples(model, far, **options)
    assert on.shape == (200, 60, 3) and on.dtype == torch.float32
    assert float(predictive_entropy(off).mean()) > float(predictive_entropy(on).mean())
    map_entropy = predictive_entropy(predictive_samples(model, far))  # one softmax pass
    assert bool((predictive_entropy(off) > map_entropy + 0.1).all())
    assert float(mutual_information(off).mean()) > float(mutual_information(on).mean())
    assert float(mutual_information(torch.cat([on, off], dim=1)).min()) >= 0.0
    mi = predictive_entropy(off) - expected_entropy(off)  # unclamped
    assert float(mi.min()) >= -1e-6


def test_samples_are_reproducible_with_the_seed(toy: dict) -> None:
    model = copy.deepcopy(toy["model"])
    posterior = _fit(toy, "diag")
    options = {"method": "laplace", "samples": 8, "laplace": posterior}
    first = predictive_samples(model, toy["test"], generator_seed=11, **options)
    again = predictive_samples(model, toy["test"], generator_seed=11, **options)
    other = predictive_samples(model, toy["test"], generator_seed=12, **options)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_missing_posterior_and_fields_are_errors(toy: dict) -> None:
    with pytest.raises(ValueError, match="laplace=fit_laplace"):
        predictive_samples(toy["model"], toy["test"], method="laplace")
    with pytest.raises(ValueError, match="only by method laplace"):
        UncertaintySpec(method="mc_dropout", hessian="diag")


def test_ood_check_fits_on_fit_data(toy: dict) -> None:
    model = copy.deepcopy(toy["model"]).float()
    x, y = blobs(20, 8)
    far = 10 * torch.randn(40, 2, generator=torch.Generator().manual_seed(9)) + 10
    options = {"score": "mutual_information", "bounds": None, "bootstrap": 0}
    uncertainty = {"method": "laplace", "samples": 50}
    result = robustness_checks.ood(
        model, (x, y), far, fit_data=(toy["x"], toy["y"]), uncertainty=uncertainty, **options
    )
    assert result.value > 0.9
    with pytest.raises(robustness_checks.errors.RobustnessError, match="needs fit_data"):
        robustness_checks.ood(model, (x, y), far, uncertainty=uncertainty, **options)
