"""Spec files: YAML with line numbers, the pydantic schema, and validation into a `Spec`."""

from robustness_checks.spec.parse import load_spec, parse_spec_text
from robustness_checks.spec.schema import CheckSpec, DataSpec, ModelSource, ModelSpec, Spec

__all__ = [
    "CheckSpec",
    "DataSpec",
    "ModelSource",
    "ModelSpec",
    "Spec",
    "load_spec",
    "parse_spec_text",
]
