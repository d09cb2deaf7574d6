"""Import the callable a spec names as 'pkg.module:function' or 'path/file.py:function'."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from robustness_checks.errors import LoadError


def import_callable(reference: str, base_dir: Path) -> Callable[..., Any]:
    """The callable named by `reference`; file paths are relative to `base_dir`."""
    module_part, sep, attribute = reference.rpartition(":")
    if not sep or not module_part or not attribute:
        raise LoadError(
            f"factory {reference!r} must look like 'pkg.module:function' or 'file.py:function'"
        )
    if module_part.endswith(".py") or "/" in module_part or "\\" in module_part:
        module = _import_file(base_dir / module_part, reference)
    else:
        try:
            module = importlib.import_module(module_part)
        except ImportError as error:
            raise LoadError(
                f"factory {reference!r}: cannot import module {module_part!r} ({error}); "
                "install it or put it on PYTHONPATH, or name a .py file relative to the spec"
            ) from error
        except Exception as error:  # the module exists but raised while importing
            raise LoadError(
                f"factory {reference!r}: importing module {module_part!r} raised {error!r}"
            ) from error
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise LoadError(f"factory {reference!r}: module {module_part!r} has no {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise LoadError(f"factory {reference!r} is a {type(target).__name__}, not a callable")
    return target


def _import_file(path: Path, reference: str) -> Any:
    path = path.resolve()
    if not path.is_file():
        raise LoadError(f"factory {reference!r}: file {path} does not exist")
    name = "_robustness_factory_" + hashlib.sha1(str(path).encode()).hexdigest()[:16]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LoadError(f"factory {reference!r}: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))  # so the file can import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        raise LoadError(f"factory {reference!r}: importing {path} raised {error!r}") from error
    finally:
        sys.path.remove(str(path.parent))
    return module
