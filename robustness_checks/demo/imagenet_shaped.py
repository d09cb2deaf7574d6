"""ImageNet-shaped (3x224x224) fixtures: a ResNet-18 of seeded random features and a fitted head.

Nothing is downloaded: `resnet18_224()` is torchvision's ResNet-18 initialised from a fixed
seed, with only its last (linear) layer fitted to the coloured digits upsampled to 224 px
(about 91% test accuracy; the 20 KB head ships in demo/weights, written by `python -m
robustness_checks.demo.imagenet_shaped`). It makes the checks' cost at 224 px measurable on
a classifier that works, not a collapsed random network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robustness_checks.demo.colour_digits import colour_test_set, colour_train_set
from robustness_checks.demo.model import WEIGHTS_DIR

SIDE = 224
MODEL_SEED = 224
HEAD_PATH = WEIGHTS_DIR / "resnet18_224_head.pt"


def random_resnet18(classes: int = 10) -> nn.Module:
    """torchvision's ResNet-18 with weights drawn from MODEL_SEED (global RNG left untouched)."""
    from torchvision.models import resnet18

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(MODEL_SEED)
        model = resnet18(weights=None, num_classes=classes)
    return model.eval()


def resnet18_224() -> nn.Module:
    """The seeded ResNet-18 with its fitted head, in eval mode."""
    model = random_resnet18()
    model.fc.load_state_dict(torch.load(HEAD_PATH, weights_only=True))
    return model


def upsampled(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, 32, 32) images in [0, 1] at 224 px (bilinear)."""
    return F.interpolate(x, size=(SIDE, SIDE), mode="bilinear", align_corners=False).clamp(0, 1)


def images_224(count: int = 16, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` coloured test digits at 224 px from test index `offset`, with their labels."""
    x, y = colour_test_set(offset + count)
    return upsampled(x[offset:]), y[offset:]


def noise_224(count: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform noise images at 224 px with all-zero labels (far-OOD data)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((count, 3, SIDE, SIDE), generator=generator), torch.zeros(count).long()


def features(model: nn.Module, x: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """The penultimate features of `model` (its `fc` skipped) for 32-px images `x`."""
    body = nn.Sequential(*list(model.children())[:-1], nn.Flatten())
    with torch.inference_mode():
        return torch.cat([body(upsampled(x[i : i + batch])) for i in range(0, len(x), batch)])


def fit_head(steps: int = 500) -> nn.Linear:
    """Multinomial logistic regression on standardised features (Adam, light L2), folded into
    one linear layer."""
    model = random_resnet18()
    x, y = colour_train_set()
    train = features(model, x)
    mean, scale = train.mean(0), train.std(0) + 1e-6
    torch.manual_seed(MODEL_SEED)
    head = nn.Linear(train.shape[1], 10)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    standardised = (train - mean) / scale
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(head(standardised), y) + 1e-4 * head.weight.square().sum()
        loss.backward()
        optimizer.step()
    folded = nn.Linear(train.shape[1], 10)
    with torch.no_grad():
        folded.weight.copy_(head.weight / scale)
        folded.bias.copy_(head.bias - folded.weight @ mean)
    return folded


def main() -> None:
    head = fit_head()
    torch.save(head.state_dict(), HEAD_PATH)
    model = resnet18_224()
    x, y = colour_test_set()
    with torch.inference_mode():
        logits = model.fc(features(model, x))
    accuracy = (logits.argmax(1) == y).float().mean().item()
    print(f"resnet18_224: test accuracy {accuracy:.3f}, head {HEAD_PATH.stat().st_size} bytes")


if __name__ == "__main__":
    main()
