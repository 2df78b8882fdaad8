"""A job notebook's declared parameters, and the checks a run's parameters must pass.

The declaration is the cell tagged ``parameters``, read with papermill's
``inspect_notebook``: each name's type is its annotation (``days: int = 3``) or else the
type of its default. Values must have that type (an int is accepted for a float, a date
for a str as its ISO string); a parameter whose default is ``None`` takes any value.
Command-line strings are converted to the declared type first.
"""

from __future__ import annotations

import ast
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import papermill

from workbench.errors import JobRefusedError

_TYPES: dict[str, type] = {"int": int, "float": float, "bool": bool, "str": str}
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


@dataclass(frozen=True)
class Parameter:
    """One declared parameter: its name, type (None when the default is None) and default."""

    name: str
    type: type | None
    default: Any


def declared_parameters(notebook: Path) -> dict[str, Parameter]:
    """The parameters ``notebook`` declares in its ``parameters``-tagged cell."""
    declared = {}
    for name, info in papermill.inspect_notebook(str(notebook)).items():
        default = _literal(info["default"])
        kind = _TYPES.get(info["inferred_type_name"]) or (None if default is None else type(default))
        declared[name] = Parameter(name, kind, default)
    return declared


def validate(notebook: Path, parameters: Mapping[str, Any], *, coerce: bool = False) -> dict[str, Any]:
    """``parameters`` checked against the declaration (dates become ISO strings); with
    ``coerce``, strings (command-line input) are first converted to the declared types.
    A clear :class:`JobRefusedError` names the first unknown or mistyped parameter."""
    declared = declared_parameters(notebook)
    checked = {}
    for name, value in parameters.items():
        if name not in declared:
            raise JobRefusedError(
                f"{notebook.stem} has no parameter {name!r}; it takes: {_listing(declared)}."
            )
        if coerce and isinstance(value, str):
            value = _convert(notebook.stem, declared[name], value)
        checked[name] = _check(notebook.stem, declared[name], value)
    return checked


def _check(job: str, declared: Parameter, value: Any) -> Any:
    kind = declared.type
    if isinstance(value, dt.date) and kind is str:
        return value.isoformat()
    if kind is None:
        return value  # declared as None: any value goes
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not kind:
        raise JobRefusedError(
            f"Parameter {declared.name!r} of {job} is declared {kind.__name__} (default "
            f"{declared.default!r}); got {value!r} ({type(value).__name__})."
        )
    return value


def _convert(job: str, declared: Parameter, text: str) -> Any:
    kind = declared.type
    try:
        if kind is bool:
            if text.lower() not in _TRUE | _FALSE:
                raise ValueError(text)
            return text.lower() in _TRUE
        return text if kind in (str, None) else kind(text)
    except ValueError:
        raise JobRefusedError(
            f"Parameter {declared.name!r} of {job} is declared {kind.__name__}; cannot read {text!r} as one."
        ) from None


def _literal(source: str) -> Any:
    try:
        return ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return None  # an expression (e.g. a call): its type is unknown, any value goes


def _listing(declared: Mapping[str, Parameter]) -> str:
    return ", ".join(
        f"{p.name}: {p.type.__name__ if p.type else 'any'} = {p.default!r}" for p in declared.values()
    ) or "no parameters"
