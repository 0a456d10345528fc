"""Typed, validated configs: mappings (Hydra or plain dicts) become frozen dataclasses or a clear error.

A field's type says what it accepts, so the checks that follow from it are not written by hand: `from_mapping`
checks every field against its annotation (`int`, `float`, `bool`, `str`, `Literal[...]`, optional `X | None`,
tuples of them) and the `Range` and `Length` bounds attached with `Annotated`, e.g.
`Annotated[int, Range(0, MAX_AMOUNT)]`. A dataclass's `validate(path)` is left for rules across fields. Every
error names the field and what is allowed; `describe` gives the same "allowed" text for the docs.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value is missing, unknown or out of range; the message names the field and what is allowed."""


@dataclass(frozen=True)
class Range:
    """Inclusive bounds of a number field (None: unbounded on that side)."""

    lo: int | float | None = None
    hi: int | float | None = None

    def holds(self, value: Any) -> bool:
        return (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)


@dataclass(frozen=True)
class Length:
    """Bounds on the length of a list or string field."""

    lo: int = 0
    hi: int | None = None

    def holds(self, value: Any) -> bool:
        return len(value) >= self.lo and (self.hi is None or len(value) <= self.hi)


Probability = Annotated[float, Range(0.0, 1.0)]
Name = Annotated[str, Length(1)]


def number(value: int | float) -> str:
    """A bound as people read it: powers of ten from 1e6 up as `1e15`, other whole numbers as integers."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and value >= 10**6 and str(value).rstrip("0") == "1":
        return f"1e{len(str(value)) - 1}"
    return str(value)


def require(ok: bool, field: str, value: Any, allowed: str) -> None:
    """Raise ConfigError naming `field` unless `ok`."""
    if not ok:
        raise ConfigError(f"{field}={value!r} is invalid: allowed {allowed}")


def require_int(value: Any, field: str, lo: int | None = None, hi: int | None = None) -> None:
    """An integer (not a bool or float) within [lo, hi]."""
    check(Annotated[int, Range(lo, hi)], value, field)


# ------------------------------------------------------------------------------------- checks from annotations


def _split(hint: Any) -> tuple[Any, tuple[Any, ...]]:
    """(the bare type, its Range/Length constraints) of a possibly `Annotated` hint."""
    if typing.get_origin(hint) is Annotated:
        bare, *meta = typing.get_args(hint)
        return bare, tuple(m for m in meta if isinstance(m, (Range, Length)))
    return hint, ()


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_SCALARS: dict[Any, tuple[Callable[[Any], bool], str, str]] = {
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer", "integers"),
    float: (_is_number, "a number", "numbers"),
    bool: (lambda v: isinstance(v, bool), "true or false", "true or false"),
    str: (lambda v: isinstance(v, str), "a string", "strings"),
}


def describe(hint: Any, markdown: bool = False) -> str:
    """What a field of type `hint` allows, in words: for error messages, or (`markdown`) for the docs' tables,
    without articles and with literal values in backticks."""
    text = _describe(hint, markdown, plural=False)
    return text if not markdown else " or ".join(p.removeprefix("a ").removeprefix("an ") for p in text.split(" or "))


def _describe(hint: Any, markdown: bool, plural: bool) -> str:
    bare, meta = _split(hint)
    args = typing.get_args(bare)
    length = next((m for m in meta if isinstance(m, Length)), None)
    non_empty = length is not None and length.lo == 1 and length.hi is None
    if _is_union(bare):
        parts = [_describe(a, markdown, plural) for a in args if a is not type(None)]
        return " or ".join((["null"] if type(None) in args else []) + parts)
    if typing.get_origin(bare) is Literal:
        return ", ".join(f"`{_literal(v)}`" for v in args) if markdown else f"one of {list(args)}"
    if bare is bool:
        return "`true`, `false`" if markdown else "true or false"
    if typing.get_origin(bare) in (tuple, list) or bare in (tuple, list):
        if len(args) > 1 and args[1] is not Ellipsis:  # fixed length
            if len(set(args)) == 1:
                return f"a list of {len(args)} {_describe(args[0], markdown, plural=True)}"
            return f"a list of {len(args)}: " + ", ".join(_describe(a, markdown, plural=False) for a in args)
        items = _describe(args[0], markdown, plural=True) if args else "values"
        if length is not None and length.hi is not None:
            return f"a list of {length.lo} to {length.hi} {items}"
        return f"{'a non-empty' if non_empty else 'a'} list of {items}"
    if dataclasses.is_dataclass(bare):
        return f"{'mappings' if plural else 'a mapping'} of {bare.__name__} fields"
    scalar = _SCALARS.get(bare)
    if scalar is None:
        return "a mapping" if (typing.get_origin(bare) or bare) in (dict, Mapping) else "anything"
    text = scalar[2] if plural else scalar[1]
    if non_empty:
        text = f"non-empty {text}" if plural else f"a non-empty {text.removeprefix('a ')}"
    for m in meta:
        if isinstance(m, Range):
            lo = "-inf" if m.lo is None else number(m.lo)
            text += f" in [{lo}, {'inf' if m.hi is None else number(m.hi)}]"
    return text


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return number(value) if isinstance(value, (int, float)) else str(value)


def check(hint: Any, value: Any, path: str) -> None:
    """Raise ConfigError naming `path` unless `value` is of type `hint` within its bounds (elements of a list are
    checked one by one, so the error names the element)."""
    if not conforms(hint, value, path):
        raise ConfigError(f"{path}={value!r} is invalid: allowed {describe(hint)}")


def conforms(hint: Any, value: Any, path: str) -> bool:
    """Whether `value` fits `hint`; an element that does not fit a list raises naming the element."""
    bare, meta = _split(hint)
    args = typing.get_args(bare)
    if _is_union(bare):
        if value is None:
            return type(None) in args
        return any(conforms(a, value, path) for a in args if a is not type(None))
    if typing.get_origin(bare) is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if typing.get_origin(bare) in (tuple, list) or bare in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            return False
        if not all(m.holds(value) for m in meta):
            return False
        if len(args) > 1 and args[1] is not Ellipsis:  # fixed length: tuple[int, int]
            if len(value) != len(args):
                return False
            for i, (a, v) in enumerate(zip(args, value, strict=True)):
                check(a, v, f"{path}[{i}]")
        elif args:
            for i, v in enumerate(value):
                check(args[0], v, f"{path}[{i}]")
        return True
    scalar = _SCALARS.get(bare)
    if scalar is None:
        return (typing.get_origin(bare) or bare) not in (dict, Mapping) or isinstance(value, Mapping)
    return scalar[0](value) and all(m.holds(value) for m in meta)


# ------------------------------------------------------------------------------------------- mappings to objects


def field_hints(cls: type) -> dict[str, Any]:
    """Each field's annotation with its `Annotated` bounds."""
    return typing.get_type_hints(cls, include_extras=True)


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, path: str) -> T:
    """Build dataclass `cls` from `data`, recursing into nested dataclasses and lists of them.

    Unknown keys are an error (a typo must not silently fall back to a default). Every field is checked against
    its annotation; then `validate(self, path)`, if the dataclass defines it, checks the rules across fields.
    """
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {unknown}; allowed: {sorted(fields)}")
    hints = field_hints(cls)
    kwargs = {name: _convert(hints[name], value, f"{path}.{name}") for name, value in data.items()}
    try:
        obj = cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{path}: {exc}") from None
    for name in fields:
        hint, value = hints[name], getattr(obj, name)
        if not _nested(hint):
            check(hint, value, f"{path}.{name}")
        elif not all(m.holds(value) for m in _split(hint)[1]):  # nested objects are checked as they are built
            raise ConfigError(f"{path}.{name}: {len(value)} entries is invalid: allowed {describe(hint)}")
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate(path)
    return obj


def _nested(hint: Any) -> bool:
    """A dataclass field, or a list of dataclasses: built (and checked) by `from_mapping` itself."""
    bare, _ = _split(hint)
    args = typing.get_args(bare)
    return dataclasses.is_dataclass(bare) or (
        typing.get_origin(bare) in (tuple, list) and bool(args) and dataclasses.is_dataclass(_split(args[0])[0])
    )


def _convert(hint: Any, value: Any, path: str) -> Any:
    hint, _ = _split(hint)
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
