"""Image folders and image data sets read safely: no link loops, no decompression bombs."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from robustness_checks.errors import LoadError
from robustness_checks.spec.schema import DataSpec


def image_folder_dataset(root: Path, transform: Any) -> Any:
    """torchvision's ImageFolder over `root`, after refusing folders reached twice (link loops),
    with a loader that names the file it cannot read and refuses decompression bombs."""
    import torchvision

    check_folder_tree(root)
    try:
        return torchvision.datasets.ImageFolder(str(root), transform=transform, loader=load_image)
    except (FileNotFoundError, NotADirectoryError) as error:
        raise LoadError(
            f"image folder {root}: {error} It needs one sub-folder of images per class"
        ) from error


def check_folder_tree(root: Path) -> None:
    """Raise when a folder under `root` is reached twice through symbolic links: a link to the
    folder itself or to one that contains it (a loop, whose images os.walk would read about 40
    times over), or a second path to a folder already read (its images would count twice)."""
    top = os.path.realpath(root)
    seen = {top: str(root)}
    pending: list[tuple[str, tuple[str, ...]]] = [(str(root), (top,))]
    while pending:
        folder, ancestors = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            continue  # unreadable: torchvision reports or skips it as before
        for entry in entries:
            try:
                if not entry.is_dir():
                    continue
            except OSError:
                continue
            real = os.path.realpath(entry.path)
            if real in ancestors:
                raise LoadError(
                    f"image folder {root}: the link {entry.path} points to {real}, a folder that "
                    "contains it, so its images would be read again and again; remove the link "
                    "(or point it outside the image folder)"
                )
            if real in seen:
                raise LoadError(
                    f"image folder {root}: {entry.path} is the folder {seen[real]} again (through "
                    "a symbolic link), so its images would be read twice; remove one of them"
                )
            seen[real] = entry.path
            pending.append((entry.path, (*ancestors, real)))


def load_image(path: str) -> Any:
    """The image at `path` as RGB; a decompression bomb or an unreadable file is a LoadError
    naming the file (PIL's DecompressionBombWarning is refused like its error)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open(path, "rb") as stream:
                return Image.open(stream).convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise LoadError(bomb_message(path, error)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise LoadError(
            f"image {path} cannot be read: {type(error).__name__}: {error}; "
            "replace or remove the file"
        ) from error


def bomb_message(name: str, error: BaseException) -> str:
    """What to say about a decompression bomb (an image declaring far more pixels than usual)."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    return (
        f"image {name} is refused as a possible decompression bomb: {error} Decoding it could "
        "take gigabytes of memory. Shrink the image; if you trust it, raise "
        f"PIL.Image.MAX_IMAGE_PIXELS (now {limit:,}) in a conftest.py"
    )


class _SameSize(Dataset[Any]):
    """A data set whose items carry their index, so that a size mismatch can name the items."""

    def __init__(self, dataset: Dataset[Any]) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, Any, int]:
        from PIL import Image

        try:
            image, label = self.dataset[index][:2]
        except Image.DecompressionBombError as error:
            raise LoadError(bomb_message(f"item {index} of the data set", error)) from None
        return image, label, index


def same_size_loader(
    dataset: Dataset[Any], spec: DataSpec, name: Callable[[int], str], where: str
) -> DataLoader[Any]:
    """Batches of `dataset` in order; images of different sizes are a LoadError that names two
    of them and the spec's `resize` and `center_crop` (instead of torch's raw `stack expects
    each tensor to be equal size`)."""
    first: list[tuple[tuple[int, ...], int]] = []

    def collate(items: list[tuple[Any, Any, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        images = [torch.as_tensor(image) for image, _, _ in items]
        if not first:
            first.append((tuple(images[0].shape), items[0][2]))
        shape, index = first[0]
        for image, (_, _, other) in zip(images, items, strict=True):
            if tuple(image.shape) != shape:
                sizes = (name(index), shape), (name(other), tuple(image.shape))
                raise LoadError(size_message(spec, where, *sizes))
        return torch.stack(images), default_collate([label for _, label, _ in items])

    return DataLoader(
        _SameSize(dataset), batch_size=spec.batch_size, shuffle=False, collate_fn=collate
    )


def size_message(
    spec: DataSpec, where: str, one: tuple[str, tuple[int, ...]], two: tuple[str, tuple[int, ...]]
) -> str:
    def size(shape: tuple[int, ...]) -> str:
        return " x ".join(str(n) for n in shape)

    if one[1][:1] != two[1][:1]:
        advice = "they have different numbers of channels; convert them all to one image mode"
    elif spec.resize is None:
        advice = (
            "set data.resize (the shorter side, keeping the aspect ratio) and data.center_crop "
            "(a square of that side) so that every image comes out the same size, e.g. "
            "resize: 256 and center_crop: 224 (or the model's input size for both)"
        )
    else:
        advice = (
            f"data.resize: {spec.resize} scales the shorter side only, so images of other aspect "
            f"ratios still differ; add data.center_crop: {spec.resize}"
        )
    return (
        f"{where}: the images come out in different sizes, {one[0]} is {size(one[1])} but "
        f"{two[0]} is {size(two[1])} (channels x height x width); {advice}"
    )
