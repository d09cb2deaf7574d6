"""Predictive samplers, uncertainty measures and OOD scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustness_checks.uncertainty.samplers import (
    MEASURES,
    confidence,
    dropout_only_train,
    expected_entropy,
    mutual_information,
    predictive_entropy,
    predictive_samples,
    variation_ratio,
)
from robustness_checks.uncertainty.scores import energy_score, entropy_score, msp_score, odin_score

FEATURES = 6
CLASSES = 4


def bn_dropout_model(p: float = 0.5) -> nn.Module:
    """An MLP with batch norm (non-trivial running statistics) before a dropout layer."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(FEATURES, 32),
        nn.BatchNorm1d(32),
        nn.ReLU(),
        nn.Dropout(p),
        nn.Linear(32, CLASSES),
    )
    with torch.no_grad():
        model.train()
        for _ in range(5):
            model(torch.randn(64, FEATURES) * 3 + 1)
    return model.eval()


def inputs(count: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(count, FEATURES, generator=torch.Generator().manual_seed(seed))


def numpy_entropy(p: np.ndarray) -> np.ndarray:
    logs = np.log(np.where(p > 0, p, 1.0))
    return -(p * logs).sum(axis=-1)


def test_reference_two_members() -> None:
    probs = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    assert predictive_entropy(probs).item() == pytest.approx(math.log(2))
    assert expected_entropy(probs).item() == 0.0
    assert mutual_information(probs).item() == pytest.approx(math.log(2))
    assert variation_ratio(probs).item() == pytest.approx(0.5)
    assert confidence(probs).item() == pytest.approx(0.5)


def test_variation_ratio_counts_the_modal_class() -> None:
    predicted = torch.tensor([[0, 1, 2], [0, 1, 2], [1, 1, 2], [2, 1, 0], [0, 1, 2]])
    probs = F.one_hot(predicted, 3).float() * 0.8 + 0.2 / 3
    # Modal counts per example: 3, 5, 4 out of T = 5.
    np.testing.assert_allclose(variation_ratio(probs).numpy(), [0.4, 0.0, 0.2], atol=1e-6)


def test_measures_match_numpy() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(5, 0.3), size=(7, 50))
    probs[0, :10, :] = np.eye(5)[rng.integers(0, 5, 10)]  # exact zeros: 0 log 0 = 0
    mean = probs.mean(axis=0)
    total = numpy_entropy(mean)
    aleatoric = numpy_entropy(probs).mean(axis=0)
    tensor = torch.from_numpy(probs)
    np.testing.assert_allclose(predictive_entropy(tensor).numpy(), total, rtol=1e-10)
    np.testing.assert_allclose(expected_entropy(tensor).numpy(), aleatoric, rtol=1e-10)
    np.testing.assert_allclose(
        mutual_information(tensor).numpy(), np.maximum(total - aleatoric, 0), atol=1e-12
    )
    np.testing.assert_allclose(confidence(tensor).numpy(), mean.max(axis=-1))
    assert set(MEASURES) == {
        "predictive_entropy",
        "expected_entropy",
        "mutual_information",
        "variation_ratio",
        "confidence",
    }


def test_single_sample_has_no_epistemic_part() -> None:
    probs = torch.softmax(torch.randn(30, 5), dim=-1)
    assert torch.equal(mutual_information(probs), torch.zeros(30))
    assert torch.equal(predictive_entropy(probs), expected_entropy(probs[None]))
    assert torch.equal(variation_ratio(probs), torch.zeros(30))


class FlagProbe:
    """Records each module's training flag whenever it runs."""

    def __init__(self, model: nn.Module) -> None:
        self.seen: dict[str, set[bool]] = {}
        for name, module in model.named_modules():
            if name:
                module.register_forward_hook(self._hook(name))

    def _hook(self, name: str):
        def hook(module: nn.Module, args, output) -> None:
            self.seen.setdefault(name, set()).add(module.training)

        return hook


def test_mc_dropout_switches_only_dropout_and_keeps_batch_norm_in_eval() -> None:
    model = bn_dropout_model()
    probe = FlagProbe(model)
    probs = predictive_samples(model, inputs(8), method="mc_dropout", samples=10)
    assert probs.shape == (10, 8, CLASSES) and probs.dtype == torch.float32
    assert probe.seen == {"0": {False}, "1": {False}, "2": {False}, "3": {True}, "4": {False}}
    # Dropout is active: the samples of one input differ.
    assert (probs.std(dim=0) > 1e-4).any()
    assert not model.training and not any(m.training for m in model.modules())


def test_mc_dropout_does_not_depend_on_the_rest_of_the_batch() -> None:
    model = bn_dropout_model(p=0.0)
    x = inputs(64)
    # With p = 0 the samples are deterministic, so they must be exactly those of the eval model;
    # batch norm in training mode would make them depend on the batch.
    alone = predictive_samples(model, x[:1], method="mc_dropout", samples=3)
    batched = predictive_samples(model, x, method="mc_dropout", samples=3)
    torch.testing.assert_close(alone[:, 0], batched[:, 0])
    torch.testing.assert_close(batched[0], model(x).softmax(-1))
    # The notebook recipe model.train() gets this wrong.
    model.train()
    with torch.no_grad():
        assert not torch.allclose(model(x[:2]).softmax(-1)[0], model(x).softmax(-1)[0], atol=1e-3)
    model.eval()


def test_mc_dropout_mean_is_the_same_alone_and_in_a_batch() -> None:
    model = bn_dropout_model(p=0.5)
    x = inputs(50)
    alone = predictive_samples(model, x[:1], method="mc_dropout", samples=4000, generator_seed=1)
    batched = predictive_samples(model, x, method="mc_dropout", samples=4000, generator_seed=2)
    assert (alone.std(dim=0) > 0.01).any()
    # 4000 draws each: the two means of input 0 differ by about 0.005 at most by chance.
    torch.testing.assert_close(alone.mean(dim=0)[0], batched.mean(dim=0)[0], atol=0.02, rtol=0)


def test_mc_dropout_seed_is_reproducible_and_leaves_global_rng_alone() -> None:
    model = bn_dropout_model()
    x = inputs(16)
    state = torch.get_rng_state()
    first = predictive_samples(model, x, method="mc_dropout", samples=5, generator_seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    again = predictive_samples(model, x, method="mc_dropout", samples=5, generator_seed=7)
    other = predictive_samples(model, x, method="mc_dropout", samples=5, generator_seed=8)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_mc_dropout_is_batched_into_bounded_chunks() -> None:
    model = bn_dropout_model(p=0.0)
    x = inputs(10)
    sizes: list[int] = []
    model.register_forward_hook(lambda module, args, output: sizes.append(args[0].shape[0]))
    whole = predictive_samples(model, x, method="mc_dropout", samples=20)
    assert sizes == [200]
    sizes.clear()
    chunked = predictive_samples(
        model, x, method="mc_dropout", samples=20, max_batch_elements=7 * FEATURES
    )
    assert max(sizes) == 7 and sum(sizes) == 200
    torch.testing.assert_close(whole, chunked)
    torch.testing.assert_close(whole, model(x).softmax(-1).expand(20, -1, -1))


@pytest.mark.parametrize(
    "dropout",
    [nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout],
)
def test_every_dropout_module_kind_is_switched(dropout: type[nn.Module]) -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), dropout(0.5)).eval()
    with dropout_only_train(model):
        assert [m.training for m in model] == [False, False, True]
    assert not any(m.training for m in model.modules())


def test_dropout_only_train_restores_mixed_flags_even_on_error() -> None:
    model = bn_dropout_model()
    model[1].train()
    model[4].train()
    before = [m.training for m in model.modules()]
    with pytest.raises(RuntimeError, match="boom"), dropout_only_train(model):
        assert [m.training for m in model] == [False, False, False, True, False]
        raise RuntimeError("boom")
    assert [m.training for m in model.modules()] == before


class FunctionalDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(FEATURES, CLASSES)
        self.switch = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.switch(F.dropout(self.linear(x), p=0.5, training=self.training))


def test_functional_dropout_stays_off() -> None:
    probs = predictive_samples(FunctionalDropout(), inputs(5), method="mc_dropout", samples=6)
    # Equal up to float rounding: rows at other batch positions may take other BLAS kernels,
    # while dropout at p = 0.5 would change them by far more.
    torch.testing.assert_close(probs, probs[:1].expand_as(probs), rtol=0, atol=1e-6)


def test_mc_dropout_without_dropout_modules_raises() -> None:
    model = nn.Sequential(nn.Linear(FEATURES, CLASSES))
    with pytest.raises(ValueError, match="has none"):
        predictive_samples(model, inputs(3), method="mc_dropout")
    with pytest.raises(ValueError, match="unknown uncertainty method"):
        predictive_samples(model, inputs(3), method="bayes")  # type: ignore[arg-type]


def test_softmax_and_ensemble_samplers_run_in_eval_mode() -> None:
    members = [bn_dropout_model() for _ in range(3)]
    for seed, member in enumerate(members):
        torch.manual_seed(seed)
        member[4].reset_parameters()
    members[1].train()
    x = inputs(12)
    probs = predictive_samples(members[0], x, method="ensemble", ensemble=members)
    assert probs.shape == (3, 12, CLASSES)
    assert members[1].training and not members[0].training
    for member, sample in zip(members, probs, strict=True):
        with torch.no_grad():
            member.eval()
            torch.testing.assert_close(sample, member(x).softmax(-1))
    single = predictive_samples(members[0], x)
    assert single.shape == (1, 12, CLASSES)
    torch.testing.assert_close(single[0], probs[0])
    with pytest.raises(ValueError, match="at least one member"):
        predictive_samples(members[0], x, method="ensemble")


def test_scores_orientation_and_definitions() -> None:
    logits = torch.tensor([[10.0, 0.0, 0.0], [0.1, 0.0, 0.0]])
    probs = logits.softmax(-1)
    assert msp_score(logits)[0] < msp_score(logits)[1]
    torch.testing.assert_close(msp_score(logits), 1 - probs.max(-1).values)
    torch.testing.assert_close(energy_score(logits, 2.0), -2.0 * torch.logsumexp(logits / 2, -1))
    assert energy_score(logits)[0] < energy_score(logits)[1]
    torch.testing.assert_close(entropy_score(logits), entropy_score(probs))
    torch.testing.assert_close(entropy_score(probs), predictive_entropy(probs))
    torch.testing.assert_close(
        entropy_score(probs, from_logits=True), predictive_entropy(probs.softmax(-1))
    )


def test_odin_with_zero_epsilon_is_temperature_scaled_msp() -> None:
    model = bn_dropout_model()
    x = inputs(20)
    with torch.no_grad():
        expected = msp_score(model(x), temperature=1000.0)
    torch.testing.assert_close(odin_score(model, x, epsilon=0.0), expected)


def test_odin_step_raises_max_softmax_and_fills_no_parameter_grad() -> None:
    model = bn_dropout_model()
    model[1].train()
    x = inputs(40)
    plain = odin_score(model, x, temperature=10.0, epsilon=0.0)
    stepped = odin_score(model, x, temperature=10.0, epsilon=0.01)
    assert (stepped <= plain + 1e-7).float().mean() > 0.9
    assert all(p.grad is None for p in model.parameters())
    assert model[1].training and not model[0].training


def test_odin_clips_the_stepped_input_to_bounds() -> None:
    model = bn_dropout_model()
    seen: list[torch.Tensor] = []
    model.register_forward_hook(lambda module, args, output: seen.append(args[0].detach()))
    x = inputs(10)
    odin_score(model, x, epsilon=0.3, bounds=(-0.5, 0.5))
    assert len(seen) == 2 and torch.equal(seen[0], x)
    assert seen[1].min() >= -0.5 and seen[1].max() <= 0.5
    assert not torch.equal(seen[1], x.clamp(-0.5, 0.5))
