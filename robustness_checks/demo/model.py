"""A small CNN for 1x8x8 digit images and factories that load its bundled weights.

`digits_cnn(pretrained=True, seed=s)` is a 10-class model (one of five seeds, an ensemble);
`digits_cnn_known_classes()` is a 6-class model trained only on digits 0-5, for the near-OOD
setting where `digits.test_set(classes=digits.HELD_OUT_CLASSES)` (digits 6-9) is unseen data.
`digits_cnn_adversarial()` is a 10-class model adversarially trained (PGD, L-inf eps 0.2).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from robustness_checks.demo.digits import KNOWN_CLASSES

WEIGHTS_DIR: Path = Path(__file__).resolve().parent / "weights"


class DigitsCNN(nn.Module):
    """Two 3x3 convolutions, one max-pool and a dropout MLP head; no batch norm."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.25),
            nn.Linear(32 * 4 * 4, 64),
            nn.ReLU(),
            nn.Dropout(0.25),
            nn.Linear(64, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def weights_path(seed: int) -> Path:
    """Path of the bundled weights file for the given training seed."""
    return WEIGHTS_DIR / f"digits_cnn_seed{seed}.pt"


def known_classes_weights_path(num_classes: int = len(KNOWN_CLASSES)) -> Path:
    """Path of the weights of a model trained only on the digit classes 0 to num_classes - 1."""
    return WEIGHTS_DIR / f"digits_cnn_classes0-{num_classes - 1}.pt"


def adversarial_weights_path(eps: float = 0.2) -> Path:
    """Path of the weights of the model adversarially trained at L-inf radius `eps`."""
    return WEIGHTS_DIR / f"digits_cnn_adv_eps{eps:g}.pt"


def available_seeds() -> list[int]:
    """Seeds for which a bundled weights file exists."""
    prefix = "digits_cnn_seed"
    return sorted(
        int(p.stem[len(prefix) :])
        for p in WEIGHTS_DIR.glob(f"{prefix}*.pt")
        if p.stem[len(prefix) :].isdigit()
    )


def digits_cnn(num_classes: int = 10, pretrained: bool = False, seed: int = 0) -> DigitsCNN:
    """A DigitsCNN in eval mode; with `pretrained`, loaded from the bundled weights for `seed`."""
    model = DigitsCNN(num_classes=num_classes)
    if pretrained:
        path = weights_path(seed)
        if not path.is_file():
            raise FileNotFoundError(
                f"no bundled weights for seed {seed} at {path}; "
                f"available seeds: {available_seeds() or 'none'}"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    return model.eval()


def digits_cnn_known_classes(pretrained: bool = True) -> DigitsCNN:
    """A 6-class DigitsCNN in eval mode for digits 0-5 (`digits.KNOWN_CLASSES`).

    With `pretrained` (the default), loaded from the bundled `digits_cnn_classes0-5.pt`, trained
    (seed 0) only on the training examples of digits 0-5, so output i is the logit of digit i and
    digits 6-9 are near-out-of-distribution for it.
    """
    num_classes = len(KNOWN_CLASSES)
    model = DigitsCNN(num_classes=num_classes)
    if pretrained:
        path = known_classes_weights_path(num_classes)
        if not path.is_file():
            raise FileNotFoundError(
                f"no bundled known-classes weights at {path}; create them with "
                "`python -m robustness_checks.demo.train --known-classes "
                f"{' '.join(map(str, KNOWN_CLASSES))}`"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    return model.eval()


def digits_cnn_adversarial(pretrained: bool = True) -> DigitsCNN:
    """A 10-class DigitsCNN in eval mode, adversarially trained with PGD at L-inf eps 0.2.

    With `pretrained` (the default), loaded from the bundled `digits_cnn_adv_eps0.2.pt`, made by
    `python -m robustness_checks.demo.train_adversarial` (Madry et al.'s PGD-10 training, eps
    ramped from 0 to 0.2). A model with known, real robustness, for checking attacks' strength.
    """
    model = DigitsCNN()
    if pretrained:
        path = adversarial_weights_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"no bundled adversarially trained weights at {path}; create them with "
                "`python -m robustness_checks.demo.train_adversarial`"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    return model.eval()
