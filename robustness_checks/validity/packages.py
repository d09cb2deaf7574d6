"""Check-type packages installed into the registry for a while, as pip would: the docs' examples."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def installed(packages: list[Path]) -> Iterator[None]:
    """The check types of these package folders (each with a pyproject.toml declaring entry
    points of the robustness_checks.checks group) in the registry, as `pip install` would put
    them there, for the duration; the registry as before afterwards."""
    from robustness_checks.checks import registry

    with tempfile.TemporaryDirectory() as site:
        for package in packages:
            _install(package, Path(site))
        sys.path.insert(0, site)
        try:
            registry.reload()
            yield
        finally:
            sys.path.remove(site)
            for name in [
                m for m, mod in sys.modules.items() if site in str(getattr(mod, "__file__", ""))
            ]:
                del sys.modules[name]
            registry.reload()


def _install(package: Path, site: Path) -> None:
    """What pip leaves of a one-module package: the module and a dist-info with entry points."""
    import tomllib  # Python 3.11+, as this command

    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    points = project.get("entry-points", {}).get(registry_group(), {})
    for module in package.glob("*.py"):
        (site / module.name).write_text(module.read_text())
    name = project["name"].replace("-", "_")
    info = site / f"{name}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = [f"[{registry_group()}]", *(f"{key} = {value}" for key, value in points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


def registry_group() -> str:
    from robustness_checks.checks.registry import ENTRY_POINT_GROUP

    return ENTRY_POINT_GROUP


def example_packages() -> list[Path]:
    """The example check-type packages of the docs (docs/examples/*/pyproject.toml)."""
    root = Path(__file__).resolve().parents[2] / "docs" / "examples"
    return sorted(path.parent for path in root.glob("*/pyproject.toml"))


def registered_types() -> list[str]:
    """The check types of this install and of the docs' example packages, sorted."""
    from robustness_checks.checks.registry import CHECK_TYPES

    with installed(example_packages()):
        return sorted(CHECK_TYPES)
