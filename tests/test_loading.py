"""Tests for robustness_checks.loading: factories, weights, models, data, devices, spec sources."""

from __future__ import annotations

import os
import shlex
import socket
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from robustness_checks.demo.model import DigitsCNN, digits_cnn
from robustness_checks.errors import LoadError, SpecError
from robustness_checks.examples import Examples
from robustness_checks.loading import device as device_module
from robustness_checks.loading.data import build_data, read_tensors_file
from robustness_checks.loading.device import resolve_device
from robustness_checks.loading.factory import import_callable
from robustness_checks.loading.models import build_ensemble, build_model, build_network
from robustness_checks.spec.parse import load_spec
from robustness_checks.spec.schema import DataSpec, ModelSource, ModelSpec, Preprocess

DIGITS = "robustness_checks.demo.model:digits_cnn"
JIT_DEPRECATED = "ignore:`torch.jit:FutureWarning"


# ---------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _forget_tmp_modules(tmp_path: Path) -> Iterator[None]:
    """Drop modules imported from tmp_path so no test sees another test's factory files."""
    yield
    root = str(tmp_path)
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(root):
            del sys.modules[name]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def seeded_digits(seed: int = 0, num_classes: int = 10) -> DigitsCNN:
    torch.manual_seed(seed)
    return DigitsCNN(num_classes=num_classes).eval()


def save_state_dict(path: Path, state: Any) -> Path:
    torch.save(state, path)
    return path


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every way of reaching the network (or torch's download cache) raises and is recorded."""
    import torch.hub
    import torchvision.datasets.utils
    import torchvision.models._api

    attempts: list[str] = []

    def refuse(what: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            attempts.append(what)
            raise AssertionError(f"{what} was called: the loader tried to reach the network")

        return call

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(urllib.request, "urlopen", refuse("urlopen"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse("load_state_dict_from_url"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse("download_url_to_file"))
    monkeypatch.setattr(
        torchvision.models._api.WeightsEnum, "get_state_dict", refuse("WeightsEnum.get_state_dict")
    )
    for name in ("download_url", "download_and_extract_archive", "download_file_from_google_drive"):
        monkeypatch.setattr(torchvision.datasets.utils, name, refuse(name))
    return attempts


class RunsShell:
    """Unpickling this runs a shell command: what a malicious weights file looks like."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (self.command,))


class PlainObject:
    """An ordinary custom class: weights_only refuses it too."""

    def __init__(self) -> None:
        self.value = 3


# ---------------------------------------------------------------- factories


def test_factory_from_module_reference(tmp_path: Path) -> None:
    assert import_callable(DIGITS, tmp_path) is digits_cnn
    network = build_network(ModelSource(factory=DIGITS, kwargs={"num_classes": 3}), tmp_path)
    assert isinstance(network, DigitsCNN)
    assert network(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


def test_factory_from_file_relative_to_base_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        tmp_path / "models" / "net.py",
        """
        from torch import nn

        def make(width: int = 4, bias: bool = True) -> nn.Module:
            return nn.Linear(2, width, bias=bias)
        """,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the base dir, not the working directory, anchors the path
    source = ModelSource(factory="models/net.py:make", kwargs={"width": 5, "bias": False})
    network = build_network(source, tmp_path)
    assert isinstance(network, nn.Linear)
    assert (network.in_features, network.out_features) == (2, 5)
    assert network.bias is None
    assert network(torch.zeros(3, 2)).shape == (3, 5)


def test_factory_file_can_import_its_sibling(tmp_path: Path) -> None:
    write(
        tmp_path / "zoo" / "_rc_loading_test_layers.py",
        """
        from torch import nn

        class Doubler(nn.Module):
            def forward(self, x):
                return 2 * x
        """,
    )
    write(
        tmp_path / "zoo" / "net.py",
        """
        from torch import nn
        from _rc_loading_test_layers import Doubler

        def make():
            return nn.Sequential(Doubler(), nn.Flatten())
        """,
    )
    path_before = list(sys.path)
    network = build_network(ModelSource(factory="zoo/net.py:make"), tmp_path)
    assert torch.equal(network(torch.ones(2, 1, 3)), torch.full((2, 3), 2.0))
    assert sys.path == path_before  # the folder was only on sys.path while importing


def test_factory_nested_attribute(tmp_path: Path) -> None:
    write(
        tmp_path / "ns.py",
        """
        from torch import nn

        class Builders:
            @staticmethod
            def tiny():
                return nn.Identity()
        """,
    )
    assert isinstance(
        build_network(ModelSource(factory="ns.py:Builders.tiny"), tmp_path), nn.Identity
    )


def test_factory_returning_a_non_module_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "bad.py", "def make():\n    return 42\n")
    with pytest.raises(LoadError, match=r"'bad.py:make' returned a int; it must return a torch.nn"):
        build_network(ModelSource(factory="bad.py:make"), tmp_path)


def test_factory_that_raises_is_reported(tmp_path: Path) -> None:
    write(tmp_path / "boom.py", "def make(**kwargs):\n    raise ValueError('bad width')\n")
    with pytest.raises(LoadError, match=r"model factory 'boom.py:make' raised ValueError"):
        build_network(ModelSource(factory="boom.py:make", kwargs={"width": -1}), tmp_path)


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("no_such_module_rc_xyz:make", r"cannot import module 'no_such_module_rc_xyz'"),
        ("robustness_checks.demo.model:no_such_factory", r"has no 'no_such_factory'"),
        ("robustness_checks.demo.model:DigitsCNN.nope", r"has no 'DigitsCNN.nope'"),
        ("missing/file.py:make", r"file .*missing[/\\]file.py does not exist"),
        ("missing.py:make", r"file .*missing.py does not exist"),
        ("robustness_checks.demo.model:WEIGHTS_DIR", r"is a PosixPath|is a WindowsPath"),
        ("no_colon_here", r"must look like 'pkg.module:function'"),
    ],
    ids=[
        "no-module",
        "no-attribute",
        "no-nested",
        "no-file",
        "no-file-top",
        "not-callable",
        "form",
    ],
)
def test_bad_factory_reference_names_it(tmp_path: Path, reference: str, message: str) -> None:
    with pytest.raises(LoadError, match=message) as caught:
        import_callable(reference, tmp_path)
    assert repr(reference) in str(caught.value)


def test_factory_file_that_fails_to_import(tmp_path: Path) -> None:
    write(tmp_path / "broken.py", "raise RuntimeError('boom at import')\n")
    with pytest.raises(LoadError, match=r"'broken.py:make': importing .*broken.py raised .*boom"):
        import_callable("broken.py:make", tmp_path)


def test_factory_module_that_fails_to_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "lib" / "_rc_loading_test_broken.py", "raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    with pytest.raises(LoadError, match=r"importing module '_rc_loading_test_broken' raised"):
        import_callable("_rc_loading_test_broken:make", tmp_path)


# ---------------------------------------------------------------- weights


def test_state_dict_weights_give_identical_outputs(tmp_path: Path) -> None:
    source = seeded_digits(seed=7)
    save_state_dict(tmp_path / "w.pt", source.state_dict())
    model = build_model(ModelSpec(factory=DIGITS, weights="w.pt"), tmp_path)
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(x), source(x))
        # and the weights really came from the file, not from the factory's own initialisation
        assert not torch.equal(digits_cnn().eval()(x), source(x))


@pytest.mark.parametrize("key", ["state_dict", "model_state_dict", "model"])
def test_checkpoint_wrapper_is_accepted(tmp_path: Path, key: str) -> None:
    source = seeded_digits(seed=3)
    save_state_dict(tmp_path / "ckpt.pt", {key: source.state_dict(), "epoch": 12})
    model = build_model(ModelSpec(factory=DIGITS, weights="ckpt.pt"), tmp_path)
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), source(x))


@pytest.mark.parametrize("payload", ["shell", "object"])
def test_pickle_that_runs_code_is_refused(tmp_path: Path, payload: str) -> None:
    marker = tmp_path / "marker"
    evil: Any = RunsShell(f"echo pwned > {shlex.quote(str(marker))}")
    if payload == "object":
        evil = {"layer.weight": torch.zeros(2), "extra": PlainObject()}
    save_state_dict(tmp_path / "evil.pt", evil)
    with pytest.raises(LoadError) as caught:
        build_model(ModelSpec(factory=DIGITS, weights="evil.pt"), tmp_path)
    message = str(caught.value)
    assert "weights_only" in message
    assert "state_dict" in message
    assert "evil.pt" in message
    assert not marker.exists()


def test_truncated_weights_file(tmp_path: Path) -> None:
    save_state_dict(tmp_path / "full.pt", seeded_digits().state_dict())
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "half.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(LoadError, match=r"half.pt is truncated or not a torch file"):
        build_model(ModelSpec(factory=DIGITS, weights="half.pt"), tmp_path)


def test_truncated_legacy_format_weights_file(tmp_path: Path) -> None:
    path = tmp_path / "legacy.pt"
    torch.save(seeded_digits().state_dict(), path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(LoadError, match=r"truncated or not a torch file"):
        build_model(ModelSpec(factory=DIGITS, weights="legacy.pt"), tmp_path)


@pytest.mark.parametrize(
    "content",
    [b"", b"hello garbage", b"these are not weights\n", b"\x00" * 64, b"PK\x03\x04garbage"],
    ids=["empty", "hello", "text", "zeros", "zip-magic"],
)
def test_garbage_weights_file_is_not_a_torch_file(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "junk.pt").write_bytes(content)
    with pytest.raises(LoadError, match=r"junk.pt is truncated or not a torch file"):
        build_model(ModelSpec(factory=DIGITS, weights="junk.pt"), tmp_path)


def test_state_dict_that_does_not_fit(tmp_path: Path) -> None:
    save_state_dict(tmp_path / "three.pt", seeded_digits(num_classes=3).state_dict())
    with pytest.raises(LoadError, match=r"(?s)three.pt does not fit the model: .*size mismatch"):
        build_model(ModelSpec(factory=DIGITS, weights="three.pt"), tmp_path)
    save_state_dict(tmp_path / "linear.pt", nn.Linear(2, 2).state_dict())
    with pytest.raises(LoadError, match=r"(?s)linear.pt does not fit the model: .*Missing key"):
        build_model(ModelSpec(factory=DIGITS, weights="linear.pt"), tmp_path)


def test_weights_file_without_a_state_dict(tmp_path: Path) -> None:
    save_state_dict(tmp_path / "list.pt", [torch.zeros(2), torch.ones(2)])
    with pytest.raises(LoadError, match=r"does not hold a state_dict"):
        build_model(ModelSpec(factory=DIGITS, weights="list.pt"), tmp_path)


def test_missing_weights_file(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match=r"weights file .*nowhere.pt does not exist"):
        build_model(ModelSpec(factory=DIGITS, weights="nowhere.pt"), tmp_path)


def test_ensemble_members_load_their_own_weights(tmp_path: Path) -> None:
    members = [seeded_digits(seed=s) for s in (1, 2)]
    for index, member in enumerate(members):
        save_state_dict(tmp_path / f"m{index}.pt", member.state_dict())
    spec = ModelSpec(
        factory=DIGITS,
        preprocess=Preprocess(mean=[0.5], std=[0.25]),
        ensemble=[ModelSource(factory=DIGITS, weights=f"m{i}.pt") for i in range(2)],
    )
    built = build_ensemble(spec, tmp_path)
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        for model, member in zip(built, members, strict=True):
            assert not model.training
            assert torch.allclose(model(x), member((x - 0.5) / 0.25))
    assert build_ensemble(ModelSpec(factory=DIGITS), tmp_path) == []


# ---------------------------------------------------------------- TorchScript


@pytest.mark.filterwarnings(JIT_DEPRECATED)
@pytest.mark.parametrize("how", ["script", "trace"])
def test_torchscript_model_gives_identical_outputs(tmp_path: Path, how: str) -> None:
    source = seeded_digits(seed=5)
    example = torch.rand(4, 1, 8, 8)
    compiled = torch.jit.script(source) if how == "script" else torch.jit.trace(source, example)
    compiled.save(str(tmp_path / "model.ts"))
    model = build_model(ModelSpec(torchscript="model.ts"), tmp_path)
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    x = torch.rand(6, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model(x), source(x), atol=1e-6)


@pytest.mark.filterwarnings(JIT_DEPRECATED)
def test_torchscript_with_preprocess(tmp_path: Path) -> None:
    source = seeded_digits(seed=6)
    torch.jit.script(source).save(str(tmp_path / "model.ts"))
    spec = ModelSpec(torchscript="model.ts", preprocess=Preprocess(mean=[0.5], std=[0.25]))
    model = build_model(spec, tmp_path)
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model(x), source((x - 0.5) / 0.25), atol=1e-6)


@pytest.mark.filterwarnings(JIT_DEPRECATED)
def test_torchscript_missing_or_corrupt_file(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match=r"cannot load TorchScript file .*absent.ts"):
        build_model(ModelSpec(torchscript="absent.ts"), tmp_path)
    save_state_dict(tmp_path / "weights.ts", seeded_digits().state_dict())
    with pytest.raises(LoadError, match=r"cannot load TorchScript file .*weights.ts"):
        build_model(ModelSpec(torchscript="weights.ts"), tmp_path)


# ---------------------------------------------------------------- torchvision models


def test_torchvision_model_with_local_weights_never_downloads(
    tmp_path: Path, no_network: list[str]
) -> None:
    import torchvision

    torch.manual_seed(0)
    source = torchvision.models.resnet18(num_classes=10).eval()
    save_state_dict(tmp_path / "resnet18.pt", source.state_dict())
    spec = ModelSpec(torchvision="resnet18", kwargs={"num_classes": 10}, weights="resnet18.pt")
    model = build_model(spec, tmp_path)
    assert not model.training
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 10)
        assert torch.equal(out, source(x))
    assert no_network == []


def test_torchvision_model_with_backbone_never_downloads(
    tmp_path: Path, no_network: list[str]
) -> None:
    # lraspp's builder defaults weights_backbone to ImageNet weights, which would download
    network = build_network(
        ModelSource(torchvision="lraspp_mobilenet_v3_large", kwargs={"num_classes": 2}), tmp_path
    )
    assert isinstance(network, nn.Module)
    assert no_network == []


def test_unknown_torchvision_model(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match=r"torchvision has no model named 'resnet_999'"):
        build_model(ModelSpec(torchvision="resnet_999"), tmp_path)


@pytest.mark.parametrize("key", ["weights", "weights_backbone"])
def test_torchvision_pretrained_weights_are_refused(
    tmp_path: Path, no_network: list[str], key: str
) -> None:
    spec = ModelSpec(torchvision="resnet18", kwargs={key: "IMAGENET1K_V1"})
    with pytest.raises(
        LoadError, match=rf"never download weights.*kwargs\.{key}.*local state_dict"
    ):
        build_model(spec, tmp_path)
    assert no_network == []


def test_torchvision_model_with_bad_kwargs(tmp_path: Path) -> None:
    spec = ModelSpec(torchvision="resnet18", kwargs={"no_such_option": 1})
    with pytest.raises(LoadError, match=r"'resnet18' rejects kwargs .*no_such_option"):
        build_model(spec, tmp_path)


# ---------------------------------------------------------------- preprocessing


@pytest.fixture
def identity_factory(tmp_path: Path) -> str:
    write(tmp_path / "ident.py", "from torch import nn\n\ndef make():\n    return nn.Identity()\n")
    return "ident.py:make"


def test_preprocess_is_folded_into_the_model(tmp_path: Path) -> None:
    network = seeded_digits(seed=2)
    save_state_dict(tmp_path / "w.pt", network.state_dict())
    spec = ModelSpec(factory=DIGITS, weights="w.pt", preprocess=Preprocess(mean=[0.5], std=[0.25]))
    model = build_model(spec, tmp_path)
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model(x), network((x - 0.5) / 0.25))
        assert not torch.allclose(model(x), network(x))


def test_single_channel_stats_broadcast_over_channels(
    tmp_path: Path, identity_factory: str
) -> None:
    model = build_model(
        ModelSpec(factory=identity_factory, preprocess=Preprocess(mean=[0.5], std=[0.25])),
        tmp_path,
    )
    x = torch.rand(2, 3, 4, 5)
    assert torch.allclose(model(x), (x - 0.5) / 0.25)


def test_per_channel_stats_on_images_and_vectors(tmp_path: Path, identity_factory: str) -> None:
    mean, std = [0.1, 0.2, 0.3], [0.5, 0.25, 2.0]
    model = build_model(
        ModelSpec(factory=identity_factory, preprocess=Preprocess(mean=mean, std=std)), tmp_path
    )
    images = torch.rand(2, 3, 4, 4)
    out = model(images)
    assert out.shape == images.shape
    for c in range(3):
        assert torch.allclose(out[:, c], (images[:, c] - mean[c]) / std[c])
    vectors = torch.rand(5, 3)
    expected = (vectors - torch.tensor(mean)) / torch.tensor(std)
    assert torch.allclose(model(vectors), expected)


@pytest.mark.parametrize(
    "preprocess", [None, Preprocess(mean=[0.5], std=[0.5])], ids=["bare", "normalized"]
)
def test_model_is_frozen_in_eval_mode(tmp_path: Path, preprocess: Preprocess | None) -> None:
    model = build_model(ModelSpec(factory=DIGITS, preprocess=preprocess), tmp_path)
    assert all(not module.training for module in model.modules())
    parameters = list(model.parameters())
    assert parameters and all(not p.requires_grad for p in parameters)
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(model(x), model(x))  # dropout is off


# ---------------------------------------------------------------- data


def test_pt_tensors_file(tmp_path: Path) -> None:
    x = torch.rand(6, 1, 8, 8, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2], dtype=torch.int32)
    torch.save({"x": x, "y": y, "extra": torch.zeros(1)}, tmp_path / "data.pt")
    examples = build_data(DataSpec(tensors="data.pt"), tmp_path)
    assert isinstance(examples, Examples)
    assert examples.x.dtype == torch.float32 and examples.y.dtype == torch.int64
    assert torch.equal(examples.x, x.float()) and torch.equal(examples.y, y.long())
    assert examples.batch_size == 256


def test_npz_tensors_file(tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((5, 4)).astype(np.float32)
    y = np.array([1, 0, 1, 1, 0])
    np.savez(tmp_path / "data.npz", x=x, y=y)
    examples = build_data(DataSpec(tensors="data.npz"), tmp_path)
    assert torch.equal(examples.x, torch.from_numpy(x))
    assert examples.y.tolist() == [1, 0, 1, 1, 0]


@pytest.mark.parametrize("suffix", [".pt", ".npz"])
def test_tensors_file_without_y_names_keys(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"data{suffix}"
    if suffix == ".pt":
        torch.save({"x": torch.zeros(2, 3), "labels": torch.zeros(2)}, path)
    else:
        np.savez(path, x=np.zeros((2, 3)), labels=np.zeros(2))
    with pytest.raises(LoadError, match=r"has no y \(found keys: x, labels\)"):
        build_data(DataSpec(tensors=path.name), tmp_path)


def test_tensors_file_that_is_not_a_mapping_or_missing(tmp_path: Path) -> None:
    torch.save([torch.zeros(2), torch.zeros(2)], tmp_path / "pair.pt")
    with pytest.raises(LoadError, match=r"must hold a mapping with keys x and y"):
        read_tensors_file(tmp_path / "pair.pt")
    with pytest.raises(LoadError, match=r"data file .*gone.pt does not exist"):
        build_data(DataSpec(tensors="gone.pt"), tmp_path)


def test_tensors_file_with_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    torch.save({"x": RunsShell(f"touch {shlex.quote(str(marker))}")}, tmp_path / "evil.pt")
    with pytest.raises(LoadError, match=r"weights_only=True"):
        build_data(DataSpec(tensors="evil.pt"), tmp_path)
    assert not marker.exists()


def test_uint8_inputs_are_refused_with_a_hint(tmp_path: Path) -> None:
    x = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    torch.save({"x": x, "y": torch.zeros(4, dtype=torch.long)}, tmp_path / "bytes.pt")
    with pytest.raises(LoadError, match=r"floating point .*uint8.*x.float\(\) / 255"):
        build_data(DataSpec(tensors="bytes.pt"), tmp_path)


def test_limit_and_batch_size(tmp_path: Path) -> None:
    x = torch.arange(10, dtype=torch.float32).reshape(10, 1)
    torch.save({"x": x, "y": torch.arange(10)}, tmp_path / "data.pt")
    examples = build_data(DataSpec(tensors="data.pt", limit=7, batch_size=3), tmp_path)
    assert len(examples) == 7 and examples.batch_size == 3
    assert examples.y.tolist() == list(range(7))
    batches = list(examples.batches(torch.device("cpu")))
    assert [b[1].shape[0] for b in batches] == [3, 3, 1]
    assert [b[0] for b in batches] == [slice(0, 3), slice(3, 6), slice(6, 7)]
    assert torch.equal(torch.cat([b[1] for b in batches]), x[:7])
    # a limit above the size keeps everything
    assert len(build_data(DataSpec(tensors="data.pt", limit=100), tmp_path)) == 10


DATA_FACTORIES = """
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

def _arrays(n):
    x = np.arange(n * 2, dtype=np.float64).reshape(n, 2) / 10
    y = np.arange(n) % 3
    return x, y

def pair(n=5):
    return _arrays(n)

def dataset(n=5):
    x, y = _arrays(n)
    return TensorDataset(torch.from_numpy(x), torch.from_numpy(y))

def loader(n=5):
    return DataLoader(dataset(n), batch_size=2, shuffle=False)

def not_data():
    return "hello"
"""


@pytest.mark.parametrize("name", ["pair", "dataset", "loader"])
def test_data_factory_forms(tmp_path: Path, name: str) -> None:
    write(tmp_path / "datasets.py", DATA_FACTORIES)
    spec = DataSpec(factory=f"datasets.py:{name}", kwargs={"n": 7}, batch_size=4)
    examples = build_data(spec, tmp_path)
    expected_x = torch.arange(14, dtype=torch.float64).reshape(7, 2).float() / 10
    assert examples.x.dtype == torch.float32 and examples.y.dtype == torch.int64
    assert torch.allclose(examples.x, expected_x)
    assert examples.y.tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert examples.batch_size == 4
    limited = build_data(
        DataSpec(factory=f"datasets.py:{name}", kwargs={"n": 7}, limit=3), tmp_path
    )
    assert limited.y.tolist() == [0, 1, 2]
    assert torch.allclose(limited.x, expected_x[:3])


def test_data_factory_returning_something_else(tmp_path: Path) -> None:
    write(tmp_path / "datasets.py", DATA_FACTORIES)
    with pytest.raises(LoadError, match=r"cannot use a str as data"):
        build_data(DataSpec(factory="datasets.py:not_data"), tmp_path)


def test_data_factory_from_module(tmp_path: Path) -> None:
    from robustness_checks.demo import digits

    examples = build_data(
        DataSpec(factory="robustness_checks.demo.digits:test_set", limit=20), tmp_path
    )
    x, y = digits.test_set()
    assert torch.equal(examples.x, x[:20].float()) and torch.equal(examples.y, y[:20].long())


def _png(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_image_folder(tmp_path: Path) -> None:
    root = tmp_path / "images"
    _png(root / "cat" / "a.png", (12, 10), (255, 255, 255))
    _png(root / "cat" / "b.png", (10, 14), (255, 255, 255))
    _png(root / "dog" / "c.png", (20, 10), (0, 0, 0))
    examples = build_data(DataSpec(image_folder="images", resize=8, center_crop=6), tmp_path)
    assert examples.x.shape == (3, 3, 6, 6)
    assert examples.x.dtype == torch.float32
    assert examples.y.tolist() == [0, 0, 1]
    assert float(examples.x.min()) >= 0.0 and float(examples.x.max()) <= 1.0
    assert torch.allclose(examples.x[:2], torch.ones(2, 3, 6, 6))
    assert torch.allclose(examples.x[2], torch.zeros(3, 6, 6))


def test_image_folder_without_class_folders(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        LoadError, match=r"image folder .*empty.*one sub-folder of images per class"
    ):
        build_data(DataSpec(image_folder="empty"), tmp_path)


def test_torchvision_dataset_is_never_downloaded(tmp_path: Path, no_network: list[str]) -> None:
    root = tmp_path / "mnist-root"
    root.mkdir()
    spec = DataSpec(torchvision={"name": "MNIST", "root": "mnist-root", "train": False})
    with pytest.raises(LoadError, match=r"MNIST was not found under .*mnist-root") as caught:
        build_data(spec, tmp_path)
    assert "Nothing is downloaded" in str(caught.value)
    assert no_network == []
    assert not any(path.is_file() for path in root.rglob("*"))


def test_torchvision_dataset_errors(tmp_path: Path, no_network: list[str]) -> None:
    with pytest.raises(LoadError, match=r"torchvision.datasets has no data set named 'NoSuchSet'"):
        build_data(DataSpec(torchvision={"name": "NoSuchSet", "root": "r"}), tmp_path)
    # Omniglot takes no `train` argument: the error must say so, not crash with a TypeError
    with pytest.raises(LoadError, match=r"Omniglot does not accept these options .*train"):
        build_data(DataSpec(torchvision={"name": "Omniglot", "root": "r"}), tmp_path)
    assert no_network == []


# ---------------------------------------------------------------- devices


@pytest.fixture
def no_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.usefixtures("no_accelerator")
def test_auto_device_is_cpu_without_accelerators() -> None:
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_auto_device_on_this_machine() -> None:
    expected = "cuda" if torch.cuda.is_available() else None
    if expected is None:
        expected = "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.usefixtures("no_accelerator")
@pytest.mark.parametrize("name", ["cuda", "cuda:3"])
def test_cuda_without_cuda_is_a_helpful_error(name: str) -> None:
    with pytest.raises(LoadError, match=rf"device '{name}' .*CUDA is not available.*device: auto"):
        resolve_device(name)


@pytest.mark.usefixtures("no_accelerator")
def test_mps_without_mps() -> None:
    with pytest.raises(LoadError, match=r"device 'mps' .*MPS is not available"):
        resolve_device("mps")


def test_cuda_index_beyond_device_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(device_module, "cuda_problem", lambda index: None)  # a working GPU
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(LoadError, match=r"device 'cuda:3' does not exist: .* 1 CUDA device"):
        resolve_device("cuda:3")


# ---------------------------------------------------------------- spec sources at collection


SPEC = """\
# a spec for the loading tests
model:
  factory: {factory}
  weights: {weights}
data:
  tensors: {tensors}
checks:
  - name: calibrated
    type: calibration
    max: 0.05
"""


def _spec_file(
    tmp_path: Path,
    *,
    factory: str = DIGITS,
    weights: str = "w.pt",
    tensors: str = "data.pt",
) -> Path:
    path = tmp_path / "specs" / "model.robustness.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SPEC.format(factory=factory, weights=weights, tensors=tensors))
    return path


def _good_files(tmp_path: Path) -> None:
    folder = tmp_path / "specs"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(seeded_digits().state_dict(), folder / "w.pt")
    torch.save({"x": torch.rand(4, 1, 8, 8), "y": torch.arange(4)}, folder / "data.pt")


def _line_of(path: Path, text: str) -> int:
    lines = path.read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if line.strip().startswith(text))


def _single_problem(path: Path, field: str, key: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    error = caught.value
    line = _line_of(path, key)
    rendered = error.render()
    assert str(path) in rendered
    assert f"{path}:{line}" in rendered
    assert f"field {field!r}" in rendered
    assert len(error.problems) == 1
    problem = error.problems[0]
    assert (problem.line, problem.field) == (line, field)
    assert message in problem.message


def test_valid_spec_sources_pass_and_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _good_files(tmp_path)
    path = _spec_file(tmp_path)
    monkeypatch.chdir(tmp_path)  # relative paths are relative to the spec, not the cwd
    document = load_spec(path)
    assert document.base_dir == path.parent
    model = build_model(document.spec.model, document.base_dir)
    examples = build_data(document.spec.data, document.base_dir)
    assert model(examples.x).shape == (4, 10)


def test_spec_with_missing_weights_file(tmp_path: Path) -> None:
    _good_files(tmp_path)
    path = _spec_file(tmp_path, weights="weights/absent.pt")
    _single_problem(path, "model.weights", "weights:", "absent.pt does not exist")
    assert _line_of(path, "weights:") == 4


def test_spec_with_unimportable_factory(tmp_path: Path) -> None:
    _good_files(tmp_path)
    path = _spec_file(tmp_path, factory="no_such_module_rc_xyz:make")
    _single_problem(path, "model.factory", "factory:", "cannot import module")
    assert _line_of(path, "factory:") == 3


def test_spec_with_factory_that_fails_to_import(tmp_path: Path) -> None:
    _good_files(tmp_path)
    write(tmp_path / "specs" / "broken.py", "raise RuntimeError('boom at import')\n")
    path = _spec_file(tmp_path, factory="broken.py:make")
    _single_problem(path, "model.factory", "factory:", "boom at import")


def test_spec_with_data_file_without_x(tmp_path: Path) -> None:
    _good_files(tmp_path)
    torch.save({"inputs": torch.zeros(2), "y": torch.zeros(2)}, tmp_path / "specs" / "nox.pt")
    path = _spec_file(tmp_path, tensors="nox.pt")
    _single_problem(path, "data.tensors", "tensors:", "has no x (found keys: inputs, y)")
    assert _line_of(path, "tensors:") == 6


def test_spec_with_unreadable_data_file(tmp_path: Path) -> None:
    _good_files(tmp_path)
    (tmp_path / "specs" / "junk.pt").write_bytes(b"hello garbage")
    path = _spec_file(tmp_path, tensors="junk.pt")
    _single_problem(path, "data.tensors", "tensors:", "cannot read data file")


def test_spec_reports_every_source_problem(tmp_path: Path) -> None:
    path = _spec_file(tmp_path, factory="nope_rc_xyz:make", weights="no.pt", tensors="no.pt")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    found = [(problem.field, problem.line) for problem in caught.value.problems]
    assert found == [("model.factory", 3), ("model.weights", 4), ("data.tensors", 6)]


def test_spec_ensemble_member_problem_is_located(tmp_path: Path) -> None:
    _good_files(tmp_path)
    path = tmp_path / "specs" / "ens.robustness.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            model:
              factory: {DIGITS}
              ensemble:
                - factory: {DIGITS}
                  weights: w.pt
                - factory: {DIGITS}
                  weights: missing-member.pt
            data:
              factory: robustness_checks.demo.digits:test_set
            checks:
              - name: calibrated
                type: calibration
                max: 0.05
            """
        )
    )
    _single_problem(path, "model.ensemble[1].weights", "weights: missing", "does not exist")
    assert _line_of(path, "weights: missing") == 7
