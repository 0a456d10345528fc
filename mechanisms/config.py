"""Typed, validated configs: mappings (Hydra or plain dicts) become frozen dataclasses or a clear error."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value is missing, unknown or out of range; the message names the field and what is allowed."""


def require(ok: bool, field: str, value: Any, allowed: str) -> None:
    """Raise ConfigError naming `field` unless `ok`."""
    if not ok:
        raise ConfigError(f"{field}={value!r} is invalid: allowed {allowed}")


def require_int(value: Any, field: str, lo: int | None = None, hi: int | None = None) -> None:
    """An integer (not a bool or float) within [lo, hi]."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    ok = ok and (lo is None or value >= lo) and (hi is None or value <= hi)
    require(ok, field, value, f"an integer in [{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]")


def require_prob(value: Any, field: str) -> None:
    """A probability in [0, 1]."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= float(value) <= 1.0
    require(ok, field, value, "a number in [0, 1]")


def require_choice(value: Any, field: str, choices: Sequence[str]) -> None:
    """One of a fixed set of names."""
    require(value in choices, field, value, f"one of {list(choices)}")


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, path: str) -> T:
    """Build dataclass `cls` from `data`, recursing into nested dataclasses and lists of them.

    Unknown keys are an error (a typo must not silently fall back to a default). Each dataclass may define
    `validate(self, path)` which is called after construction.
    """
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {unknown}; allowed: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _convert(hints[name], value, f"{path}.{name}") for name, value in data.items()}
    try:
        obj = cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{path}: {exc}") from None
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate(path)
    return obj


def _convert(hint: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}={value!r} is invalid: allowed a mapping of {hint.__name__} fields")
        return from_mapping(hint, value, path)
    if origin in (tuple, list) and args and dataclasses.is_dataclass(args[0]):
        _require_sequence(value, path)
        return tuple(from_mapping(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin in (tuple, list):
        _require_sequence(value, path)
        return tuple(_plain(v) for v in value)
    if origin in (typing.Union, types.UnionType) and type(None) in args and value is None:
        return None
    return _plain(value)


def _require_sequence(value: Any, path: str) -> None:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"{path}={value!r} is invalid: allowed a list")


def _plain(value: Any) -> Any:
    """Turn OmegaConf containers and nested sequences into plain tuples/dicts."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return tuple(_plain(v) for v in value)
    return value
