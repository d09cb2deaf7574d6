"""Data faults: image folders with link loops, mixed sizes or decompression bombs; NaN logits while
sampling noise; eps wider than `bounds`; what `validate` tells about tensors files."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image

import robustness_checks
from robustness_checks import LoadError, RobustnessError, RobustnessWarning
from robustness_checks.__main__ import main
from robustness_checks.loading.data import build_data
from robustness_checks.spec.schema import DataSpec


def _png(path: Path, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 10, 10)).save(path)


def test_image_folder_link_loops_and_folders_read_twice_are_refused(tmp_path: Path) -> None:
    _png(tmp_path / "loop" / "cat" / "a.png", (8, 8))
    _png(tmp_path / "loop" / "dog" / "b.png", (8, 8))
    os.symlink("..", tmp_path / "loop" / "cat" / "up")  # a class folder linking to its parent
    with pytest.raises(LoadError, match=r"the link .*cat/up points to .*loop, a folder that con"):
        build_data(DataSpec(image_folder="loop"), tmp_path)
    _png(tmp_path / "twice" / "cat" / "a.png", (8, 8))
    os.symlink(tmp_path / "twice" / "cat", tmp_path / "twice" / "dog")
    with pytest.raises(LoadError, match=r"twice/dog is the folder .*twice/cat again .*read twice"):
        build_data(DataSpec(image_folder="twice"), tmp_path)
    # A link to a folder outside the image folder is fine.
    _png(tmp_path / "pool" / "c.png", (8, 8))
    os.remove(tmp_path / "loop" / "cat" / "up")
    os.symlink(tmp_path / "pool", tmp_path / "loop" / "cat" / "up")
    assert build_data(DataSpec(image_folder="loop"), tmp_path).y.tolist() == [0, 0, 1]


def test_mixed_image_sizes_name_resize_and_center_crop(tmp_path: Path) -> None:
    _png(tmp_path / "images" / "cat" / "a.png", (8, 8))
    _png(tmp_path / "images" / "dog" / "b.png", (10, 12))
    with pytest.raises(LoadError) as caught:
        build_data(DataSpec(image_folder="images"), tmp_path)
    message = str(caught.value)
    assert "cat/a.png is 3 x 8 x 8 but dog/b.png is 3 x 12 x 10" in message
    assert "data.resize" in message and "data.center_crop" in message
    assert "stack expects" not in message
    with pytest.raises(LoadError, match=r"resize: 8 scales the shorter side .*center_crop: 8"):
        build_data(DataSpec(image_folder="images", resize=8), tmp_path)
    examples = build_data(DataSpec(image_folder="images", resize=8, center_crop=8), tmp_path)
    assert examples.x.shape == (2, 3, 8, 8)


def _bomb_png(path: Path, side: int) -> None:
    """A 1x1 PNG whose header declares side x side pixels (the IHDR chunk rewritten)."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", side, side)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))


def test_decompression_bombs_are_refused_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _bomb_png(tmp_path / "bomb" / "cat" / "big.png", 100_000)  # 1e10 pixels in 70 bytes
    with pytest.raises(LoadError, match=r"image .*cat/big\.png is refused as a possible decomp"):
        build_data(DataSpec(image_folder="bomb"), tmp_path)
    # PIL's warning (above MAX_IMAGE_PIXELS, below twice that) is refused the same way.
    _png(tmp_path / "large" / "cat" / "a.png", (8, 8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40)
    with pytest.raises(LoadError, match=r"a\.png is refused .*MAX_IMAGE_PIXELS \(now 40\)"):
        build_data(DataSpec(image_folder="large"), tmp_path)


class NaNAbove(torch.nn.Module):
    """2-class affine model (p about 1e-6 at sigma 0.1) returning NaN rows where x[1] > cut."""

    def __init__(self, cut: float) -> None:
        super().__init__()
        self.cut = cut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.stack([x[:, 0], -x[:, 0]], dim=1)
        return logits.masked_fill((x[:, 1] > self.cut)[:, None], float("nan"))


@pytest.mark.parametrize("estimator", ["mc", "importance"])
def test_nan_draws_are_counted_and_warned_never_failures(estimator: str) -> None:
    x = torch.zeros(1, 8)
    x[0, 0] = 0.475
    data = (x, torch.zeros(1, dtype=torch.long))
    # The estimators' handling of NaN draws (the test at the bound would settle before any).
    options = {
        "sigma": 0.1,
        "estimator": estimator,
        "bounds": None,
        "max_evaluations": 20000,
        "settle_at_bound": False,
    }
    with pytest.warns(RobustnessWarning, match=r"NaN or infinite logits at [\d,]+ of [\d,]+ noisy"):
        few = robustness_checks.noise(NaNAbove(0.31), data, max_probability=0.01, **options)
    row = few.details["inputs"][0]
    assert 0 < row["nonfinite"] < 0.01 * row["draws"]
    assert row["probability"] < 1e-4  # about 1e-6: the NaN draws (about 1e-3) are no failures
    assert few.outcome == "passed" and "not counted as failures" in few.warnings[0]
    # More NaN draws than min(1%, max_probability): the input cannot pass.
    with pytest.warns(RobustnessWarning, match=r"1 input with more than min\(0\.01"):
        many = robustness_checks.noise(NaNAbove(0.2), data, max_probability=1e-4, **options)
    assert many.outcome == "inconclusive"
    assert "is inconclusive: the model returned NaN or infinite logits at" in many.message


class Linear(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        return torch.stack([flat.sum(1), -flat.sum(1), flat[:, 0]], dim=1)


def test_eps_wider_than_bounds_warns_and_data_outside_bounds_errors() -> None:
    x = torch.full((6, 1, 4, 4), 0.5)
    data = (x, torch.zeros(6, dtype=torch.long))
    runs = {
        "attack.eps 2 is at least the width 1": lambda: robustness_checks.adversarial(
            Linear(), data, eps=[0.1, 2.0], method="fgsm"
        ),
        "attack.eps 5 is at least the L2 diagonal 4": lambda: robustness_checks.adversarial(
            Linear(), data, eps=5.0, method="fgsm", norm="2"
        ),
        "perturbations[0].eps 1.5 is at least the width 1": lambda: robustness_checks.fuzz(
            Linear(),
            data,
            perturbations=[{"kind": "linf", "eps": 1.5}],
            max_examples=5,
            database=False,
        ),
        "eps 1 is at least the width 1": lambda: robustness_checks.entropy_trend(
            Linear(), data, eps=[0.0, 1.0], attack={"method": "uniform"}
        ),
    }
    for text, run in runs.items():
        with pytest.warns(RobustnessWarning, match="every input in the bounds is within reach"):
            result = run()
        assert any(text in warning for warning in result.warnings), (text, result.warnings)
    quiet = robustness_checks.adversarial(Linear(), data, eps=0.1, method="fgsm")
    assert not any("within reach" in warning for warning in quiet.warnings)
    outside = (x * 3, data[1])
    with pytest.raises(RobustnessError, match=r"data lies in \[1\.5, 1\.5\], outside the spec's"):
        robustness_checks.entropy_trend(Linear(), outside, eps=[0.0, 0.1])
    with pytest.raises(RobustnessError, match=r"outside the spec's bounds"):
        robustness_checks.noise(Linear(), outside, sigma=0.1, clip=True, inputs=1)


def test_validate_reports_dtypes_shapes_and_label_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = torch.rand(30, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    x[0, 0, 0, 0] = 0.0  # the printed range starts at 0 whatever the draw
    torch.save({"x": x, "y": torch.arange(30) % 10}, tmp_path / "good.pt")
    torch.save({"x": x.double(), "y": torch.full((30,), 0.5)}, tmp_path / "odd.pt")
    for name in ("good", "odd"):
        (tmp_path / f"{name}.robustness.yaml").write_text(
            "model: {factory: robustness_checks.demo.model:digits_cnn}\n"
            f"data: {{tensors: {name}.pt}}\n"
            "checks:\n"
            "  - {name: pgd, type: adversarial, attack: {eps: 2}, min_accuracy: 0.5}\n"
        )
    assert main(["validate", str(tmp_path / "good.robustness.yaml")]) == 0
    out = capsys.readouterr().out
    assert "data: x float32 (30, 1, 8, 8) in [0" in out and ", y int64 in [0, 9]" in out
    assert "note: check 'pgd': attack.eps 2 is at least the width 1 of bounds [0, 1]" in out
    assert main(["validate", str(tmp_path / "odd.robustness.yaml")]) == 0
    out = capsys.readouterr().out
    assert "data: x float64 (30, 1, 8, 8)" in out and "y float32" in out
    assert "note: data x is float64; it is converted to float32 when loaded" in out
    assert "note: data y holds non-integer labels (30 of 30, e.g. 0.5)" in out
