"""Model sources beyond factories and torchvision: weights in safetensors format, timm
architectures by name, and a Hugging Face image classifier loaded from local files. Nothing is
downloaded: every model is built from a configuration here and saved into tmp_path."""

from __future__ import annotations

import json
import socket
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import robustness_checks
from robustness_checks.demo.model import DigitsCNN
from robustness_checks.errors import LoadError, SpecError
from robustness_checks.examples import as_examples
from robustness_checks.execution.context import CheckContext
from robustness_checks.loading.factory import import_callable
from robustness_checks.loading.models import build_model
from robustness_checks.spec.parse import load_spec
from robustness_checks.spec.schema import ModelSpec

DIGITS = "robustness_checks.demo.model:digits_cnn"
DIGITS_DATA = "data: {factory: robustness_checks.demo.digits:test_set, kwargs: {limit: 20}}\n"
CHECKS = "checks:\n  - {name: c, type: calibration, bootstrap: 10}\n"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every connection attempt fails and is recorded."""
    attempts: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(repr(args[1:] if args else kwargs))
        raise AssertionError("the loader tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return attempts


def seeded_digits(seed: int = 0) -> DigitsCNN:
    torch.manual_seed(seed)
    return DigitsCNN().eval()


def collection_problems(tmp_path: Path, model: str) -> str:
    """The SpecError message of a spec with this model block, from collection (nothing runs)."""
    spec = tmp_path / "s.robustness.yaml"
    spec.write_text(f"model: {model}\n{DIGITS_DATA}{CHECKS}")
    with pytest.raises(SpecError) as caught:
        load_spec(spec)
    return str(caught.value)


# ------------------------------------------------------------------------------ safetensors


def test_safetensors_weights_give_identical_logits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.torch import save_file

    source = seeded_digits(seed=7)
    save_file(source.state_dict(), tmp_path / "w.safetensors")
    spec = tmp_path / "s.robustness.yaml"
    spec.write_text(f"model: {{factory: {DIGITS}, weights: w.safetensors}}\n{DIGITS_DATA}{CHECKS}")
    document = load_spec(spec)  # the collection-time header check accepts the file

    def no_pickle(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("torch.load (pickle) was used for a safetensors file")

    monkeypatch.setattr(torch, "load", no_pickle)
    model = build_model(document.spec.model, tmp_path)
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(x), source(x))
        assert not torch.equal(seeded_digits(seed=8)(x), source(x))


TIED = """\
import torch
from torch import nn


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.encode = nn.Linear(4, 4)
        self.decode = nn.Linear(4, 4)
        self.decode.weight = self.encode.weight  # stored once by safetensors' save_model

    def forward(self, x):
        return self.decode(torch.relu(self.encode(x)))
"""


def test_safetensors_from_save_model_with_tied_weights(tmp_path: Path) -> None:
    from safetensors.torch import save_model

    (tmp_path / "tied.py").write_text(TIED)
    make = import_callable("tied.py:Tied", tmp_path)
    torch.manual_seed(3)
    source = make().eval()
    save_model(source, str(tmp_path / "tied.safetensors"))
    model = build_model(ModelSpec(factory="tied.py:Tied", weights="tied.safetensors"), tmp_path)
    x = torch.rand(3, 4)
    with torch.no_grad():
        assert torch.equal(model(x), source(x))


def test_truncated_safetensors_file_is_refused_at_collection_and_at_load(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file(seeded_digits().state_dict(), path)
    whole = path.stat().st_size
    path.write_bytes(path.read_bytes()[: whole // 2])
    size = path.stat().st_size
    expected = (
        f"weights file {path} is truncated or not a safetensors file ({size:,} bytes; its "
        f"header describes {whole:,} bytes). Save it again with "
        "safetensors.torch.save_file(model.state_dict(), path), or copy or download it again in "
        "full"
    )
    message = collection_problems(tmp_path, f"{{factory: {DIGITS}, weights: w.safetensors}}")
    assert f"field 'model.weights': {expected}" in message
    with pytest.raises(LoadError) as caught:
        build_model(ModelSpec(factory=DIGITS, weights="w.safetensors"), tmp_path)
    assert str(caught.value) == expected


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "shorter than the 8 bytes that give a safetensors header's length"),
        (b"not safetensors at all", "its first 8 bytes give no header length that fits in"),
        (b"\x10" + bytes(7) + b"[1, 2, 3]       ", "its header is not a JSON object"),
        (b"\x08" + bytes(7) + b"{nope}  ", "its header is not JSON"),
    ],
    ids=["empty", "text", "json-list", "not-json"],
)
def test_foreign_safetensors_files_are_refused(tmp_path: Path, content: bytes, reason: str) -> None:
    (tmp_path / "w.safetensors").write_bytes(content)
    with pytest.raises(LoadError) as caught:
        build_model(ModelSpec(factory=DIGITS, weights="w.safetensors"), tmp_path)
    assert "is truncated or not a safetensors file" in str(caught.value)
    assert reason in str(caught.value)


def test_a_torch_file_named_safetensors_says_so(tmp_path: Path) -> None:
    torch.save(seeded_digits().state_dict(), tmp_path / "w.safetensors")
    message = collection_problems(tmp_path, f"{{factory: {DIGITS}, weights: w.safetensors}}")
    assert "its bytes begin like a torch.save file, which should not end in .safetensors" in (
        message
    )


def test_safetensors_that_do_not_fit_name_the_keys(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file(nn.Linear(2, 2).state_dict(), tmp_path / "linear.safetensors")
    with pytest.raises(LoadError, match=r"linear.safetensors does not fit the model: Missing key"):
        build_model(ModelSpec(factory=DIGITS, weights="linear.safetensors"), tmp_path)
    save_file(DigitsCNN(num_classes=3).state_dict(), tmp_path / "three.safetensors")
    with pytest.raises(LoadError, match=r"(?s)three.safetensors does not fit.*size mismatch"):
        build_model(ModelSpec(factory=DIGITS, weights="three.safetensors"), tmp_path)


def test_torchvision_source_with_safetensors_weights(tmp_path: Path, no_network: list[str]) -> None:
    import torchvision
    from safetensors.torch import save_file

    torch.manual_seed(0)
    source = torchvision.models.squeezenet1_1(num_classes=3).eval()
    save_file(source.state_dict(), tmp_path / "sq.safetensors")
    spec = ModelSpec(
        torchvision="squeezenet1_1", kwargs={"num_classes": 3}, weights="sq.safetensors"
    )
    model = build_model(spec, tmp_path)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), source(x))
    assert no_network == []


def test_unknown_torchvision_name_suggests_close_names(tmp_path: Path) -> None:
    message = collection_problems(tmp_path, "{torchvision: resnet_18}")
    assert (
        "field 'model.torchvision': torchvision has no model named 'resnet_18'; did you mean "
        "'resnet18'" in message
    )


# ------------------------------------------------------------------------------------- timm


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_timm_architecture_with_local_weights(
    tmp_path: Path, no_network: list[str], suffix: str
) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    source = timm.create_model("test_resnet", pretrained=False, num_classes=3).eval()
    path = tmp_path / f"w{suffix}"
    if suffix == ".pt":
        torch.save(source.state_dict(), path)
    else:
        from safetensors.torch import save_file

        save_file(source.state_dict(), path)
    spec = tmp_path / "s.robustness.yaml"
    spec.write_text(
        f"model: {{timm: test_resnet, kwargs: {{num_classes: 3}}, weights: w{suffix}}}\n"
        f"{DIGITS_DATA}{CHECKS}"
    )
    model = build_model(load_spec(spec).spec.model, tmp_path)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(model(x), source(x))
        torch.manual_seed(1)
        other = timm.create_model("test_resnet", pretrained=False, num_classes=3).eval()
        assert not torch.equal(other(x), source(x))
    assert no_network == []


TIMM_REFUSAL = (
    "timm models never download or read pretrained weights here: leave kwargs.{key} out and give "
    "a local weights file (.pt or .safetensors) in `weights:`"
)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("pretrained", "true"),
        ("checkpoint_path", "ckpt.pth"),
        ("pretrained_cfg_overlay", "{file: w.pth}"),
        ("cache_dir", "cache"),
    ],
)
def test_timm_pretrained_options_are_refused(
    tmp_path: Path, no_network: list[str], key: str, value: str
) -> None:
    pytest.importorskip("timm")
    message = collection_problems(tmp_path, f"{{timm: test_resnet, kwargs: {{{key}: {value}}}}}")
    assert f"field 'model.kwargs.{key}': {TIMM_REFUSAL.format(key=key)}" in message
    kwargs = {key: True if value == "true" else value}
    with pytest.raises(LoadError) as caught:
        build_model(ModelSpec(timm="test_resnet", kwargs=kwargs), tmp_path)
    assert str(caught.value) == TIMM_REFUSAL.format(key=key)
    assert no_network == []


def test_timm_pretrained_false_is_accepted(tmp_path: Path, no_network: list[str]) -> None:
    pytest.importorskip("timm")
    spec = ModelSpec(timm="test_resnet", kwargs={"pretrained": False, "num_classes": 3})
    assert build_model(spec, tmp_path)(torch.rand(1, 3, 32, 32)).shape == (1, 3)
    assert no_network == []


def test_unknown_timm_name_suggests_close_names(tmp_path: Path) -> None:
    pytest.importorskip("timm")
    expected = "timm has no model named 'resnet_18'; did you mean 'resnet18', "
    message = collection_problems(tmp_path, "{timm: resnet_18}")
    assert f"field 'model.timm': {expected}" in message
    with pytest.raises(LoadError, match=expected):
        build_model(ModelSpec(timm="resnet_18"), tmp_path)


def test_timm_hub_names_are_refused(tmp_path: Path, no_network: list[str]) -> None:
    pytest.importorskip("timm")
    message = collection_problems(tmp_path, "{timm: 'hf-hub:timm/resnet18.a1_in1k'}")
    assert (
        "field 'model.timm': timm model 'hf-hub:timm/resnet18.a1_in1k' names a Hugging Face Hub "
        "repository or a folder, whose configuration and weights would be fetched; give the "
        "architecture name (such as 'resnet18') and a local weights file in `weights:`"
    ) in message
    assert no_network == []


def test_timm_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    expected = "model.timm names a timm architecture, but timm is not installed: pip install timm"
    assert f"field 'model.timm': {expected}" in collection_problems(tmp_path, "{timm: resnet18}")
    with pytest.raises(LoadError) as caught:
        build_model(ModelSpec(timm="resnet18"), tmp_path)
    assert str(caught.value) == expected


# --------------------------------------------------------------------- Hugging Face (local)

ROOT = Path(__file__).parents[1]
# A model built from its configuration, for a state_dict in `weights:`.
FROM_CONFIG = """\
from pathlib import Path

from transformers import AutoConfig, AutoModelForImageClassification


def vit_from_config():
    config = AutoConfig.from_pretrained(Path(__file__).parent / "vit", local_files_only=True)
    return AutoModelForImageClassification.from_config(config)
"""


def documented_factory() -> str:
    """The Hugging Face factory file that docs/model_sources.md shows."""
    page = (ROOT / "docs" / "model_sources.md").read_text()
    (block,) = [b for b in page.split("```python\n")[1:] if b.startswith("# hf_classifier.py")]
    return block.split("```")[0]


@pytest.fixture
def vit(tmp_path: Path) -> nn.Module:
    """A tiny ViT image classifier (3 classes, 32 x 32 inputs) saved with save_pretrained into
    tmp_path/vit (and its state_dict in vit.safetensors), the data it is checked on in
    tmp_path/data.pt, and the factory files: docs/model_sources.md's hf_classifier.py and
    hf_config.py."""
    transformers = pytest.importorskip("transformers")
    # Imported before any in-process pytest run, which would otherwise unload it afterwards.
    from transformers.models.vit import modeling_vit  # noqa: F401

    config = transformers.ViTConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
        num_labels=3,
    )
    torch.manual_seed(0)
    model = transformers.ViTForImageClassification(config).eval()
    model.save_pretrained(tmp_path / "vit")
    # save_pretrained may rename keys on disk (from_pretrained renames them back), so the file
    # for `weights:` is the module's own state_dict.
    from safetensors.torch import save_file

    save_file(model.state_dict(), tmp_path / "vit.safetensors")
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(24, 3, 32, 32, generator=generator)
    torch.save({"x": x, "y": torch.randint(0, 3, (24,), generator=generator)}, tmp_path / "data.pt")
    (tmp_path / "hf_classifier.py").write_text(documented_factory())
    (tmp_path / "hf_config.py").write_text(FROM_CONFIG)
    return model


class LogitsOnly(nn.Module):
    """The reference: the Hugging Face model's `.logits`, taken by hand."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x).logits


HF_SPEC = """\
model:
  {model}
data: {{tensors: data.pt}}
checks:
  - {{name: calibrated, type: calibration, bootstrap: 10}}
  - {{name: attacked, type: adversarial, attack: {{eps: 0.02, steps: 2}}, min_accuracy: 0.0,
      gradient_masking: off}}
"""


HF_MODELS = {
    "automatic": "{factory: hf_classifier.py:load_classifier, kwargs: {folder: vit}}",
    "output": "{factory: hf_classifier.py:load_classifier, kwargs: {folder: vit}, output: logits}",
    "weights": "{factory: hf_config.py:vit_from_config, weights: vit.safetensors}",
}


def test_hugging_face_image_classifier_from_local_files(
    pytester: pytest.Pytester, tmp_path: Path, vit: nn.Module, no_network: list[str]
) -> None:
    """Three specs, one per way of giving the model: the checks see the model's .logits, and
    each spec's results are those of the model with its .logits taken by hand."""
    for name in ("vit", "vit.safetensors", "data.pt", "hf_classifier.py", "hf_config.py"):
        (pytester.path / name).symlink_to(tmp_path / name)
    data = torch.load(tmp_path / "data.pt")
    examples = (data["x"], data["y"])
    for name, model in HF_MODELS.items():
        spec = pytester.path / f"{name}.robustness.yaml"
        spec.write_text(HF_SPEC.format(model=model))
        built = build_model(load_spec(spec).spec.model, pytester.path)
        context = CheckContext.create(built, as_examples(examples), torch.device("cpu"), "c")
        with torch.no_grad():  # the logits every check sees are the model's own .logits
            assert torch.equal(context.model(data["x"]), vit(data["x"]).logits), name
    result = pytester.runpytest("--robustness-json=out.json")
    result.assert_outcomes(passed=2 * len(HF_MODELS))
    records = json.loads((pytester.path / "out.json").read_text())["results"]
    reference = LogitsOnly(vit)
    calibrated = robustness_checks.calibration(reference, examples, bootstrap=10, name="calibrated")
    attacked = robustness_checks.adversarial(
        reference,
        examples,
        eps=0.02,
        steps=2,
        min_accuracy=0.0,
        gradient_masking="off",
        name="attacked",
    )
    expected = {"calibrated": calibrated.value, "attacked": attacked.value}
    assert sorted(Path(r["spec"]).name for r in records) == sorted(
        f"{name}.robustness.yaml" for name in HF_MODELS for _ in range(2)
    )
    assert all(r["value"] == expected[r["check"]] for r in records), records
    assert no_network == []
