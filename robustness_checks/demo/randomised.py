"""Randomised demo defences: Gaussian input noise, dropout left on, random resize-and-pad.

Each wraps a bundled DigitsCNN and draws from torch's global generator at every forward pass,
in eval mode too, as randomised defences and MC-dropout models deployed as they are do.
They are held-out models for the handling of random models (docs/adversarial.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robustness_checks.demo.model import DigitsCNN, digits_cnn

SIDE = 8  # the digits' image side


class InputNoise(nn.Module):
    """The model applied to its input plus N(0, sigma^2) noise per pixel, at every call."""

    def __init__(self, model: nn.Module, sigma: float) -> None:
        super().__init__()
        self.model, self.sigma = model, sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x + self.sigma * torch.randn_like(x))


class AlwaysDropout(nn.Module):
    """Dropout with probability p at every call, whatever the mode (functional, training=True)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, training=True)


class ResizePad(nn.Module):
    """Each image shrunk to a random side in [min_side, 8] and zero-padded back to 8 x 8 at a
    random offset (Xie et al. 2018's defence, scaled to the digits), then the model."""

    def __init__(self, model: nn.Module, min_side: int = 6) -> None:
        super().__init__()
        self.model, self.min_side = model, min_side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        sides = torch.randint(self.min_side, SIDE + 1, (n,), device=x.device)
        out = torch.zeros_like(x)
        for side in range(self.min_side, SIDE + 1):
            rows = (sides == side).nonzero().squeeze(1)
            if rows.numel() == 0:
                continue
            small = F.interpolate(x[rows], size=(side, side), mode="bilinear", align_corners=False)
            canvas = F.pad(small, (0, SIDE - side, 0, SIDE - side))
            shift = torch.randint(0, SIDE - side + 1, (rows.numel(), 2), device=x.device)
            out[rows] = _shifted(canvas, shift)
        return self.model(out)


def _shifted(canvas: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Each image of `canvas` (n, c, 8, 8) rolled down and right by its row of `shift` (n, 2);
    the rolled-in pixels are the canvas's zero padding."""
    grid = torch.arange(SIDE, device=canvas.device)
    rows = (grid.view(1, SIDE) - shift[:, :1]) % SIDE  # (n, 8)
    cols = (grid.view(1, SIDE) - shift[:, 1:]) % SIDE
    c = canvas.shape[1]
    canvas = canvas.gather(2, rows.view(-1, 1, SIDE, 1).expand(-1, c, SIDE, SIDE))
    return canvas.gather(3, cols.view(-1, 1, 1, SIDE).expand(-1, c, SIDE, SIDE))


def noisy_input_cnn(sigma: float = 0.15, seed: int = 0) -> nn.Module:
    """The bundled CNN of `seed` behind Gaussian input noise of standard deviation `sigma`."""
    return InputNoise(digits_cnn(pretrained=True, seed=seed), sigma).eval()


def dropout_on_cnn(p: float = 0.25, seed: int = 0) -> nn.Module:
    """The bundled CNN of `seed` with its dropout layers active at every call (an MC-dropout
    model deployed as it is)."""
    model: DigitsCNN = digits_cnn(pretrained=True, seed=seed)
    for index, layer in enumerate(model.classifier):
        if isinstance(layer, nn.Dropout):
            model.classifier[index] = AlwaysDropout(p)
    return model.eval()


def resize_pad_cnn(min_side: int = 6, seed: int = 0) -> nn.Module:
    """The bundled CNN of `seed` behind a random resize-and-pad of its input."""
    return ResizePad(digits_cnn(pretrained=True, seed=seed), min_side).eval()
