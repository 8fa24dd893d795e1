"""Typed field access for JSON records: each accessor raises :class:`FieldError` naming the field.

Readers catch ``FieldError`` per element (or per item inside an element) and turn it into a
:class:`~corpora.readers.common.Malformed` or a raised :class:`~corpora.readers.common.ReaderError`.
``where`` prefixes the field name for nested objects (``"subject."``). Where several keys are
given, the first present one is used (releases of the same file differ: ``image_id`` / ``id``).
"""

from __future__ import annotations

import math
from typing import Any


class FieldError(Exception):
    """A field problem inside a record: ``field`` names the field (dotted path)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"field {field!r}: {reason}")
        self.field = field


def get_field(obj: dict[str, Any], keys: tuple[str, ...], where: str = "") -> tuple[str, Any]:
    """Return ``(key, value)`` for the first of ``keys`` present in ``obj``."""
    for key in keys:
        if key in obj:
            return key, obj[key]
    also = f" (nor {', '.join(repr(k) for k in keys[1:])})" if len(keys) > 1 else ""
    raise FieldError(f"{where}{keys[0]}", f"missing{also}")


def get_int(obj: dict[str, Any], *keys: str, where: str = "", optional: bool = False) -> int | None:
    """An integer field; with ``optional``, a missing or null field gives None."""
    if type(value := obj.get(keys[0])) is int:  # the fast, common case
        return value
    try:
        key, value = get_field(obj, keys, where)
    except FieldError:
        if optional:
            return None
        raise
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(f"{where}{key}", f"expected an integer, got {value!r}")
    return value


def get_id(obj: dict[str, Any], *keys: str, where: str = "") -> int | str:
    """An id field: a non-negative integer or a non-empty string."""
    key, value = get_field(obj, keys, where)
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FieldError(f"{where}{key}", f"expected an id, got {value!r}")
    return value


def get_num(obj: dict[str, Any], key: str, *, where: str = "") -> float:
    """A finite number (int or float) field."""
    value = obj.get(key)
    kind = type(value)
    if kind is int or (kind is float and math.isfinite(value)):  # the fast, common case
        return value
    _, value = get_field(obj, (key,), where)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FieldError(f"{where}{key}", f"expected a number, got {value!r}")
    return value


def get_str(obj: dict[str, Any], key: str, *, where: str = "", nonempty: bool = False) -> str:
    """A string field, stripped of surrounding whitespace; ``nonempty`` rejects blank strings."""
    _, value = get_field(obj, (key,), where)
    if not isinstance(value, str):
        raise FieldError(f"{where}{key}", f"expected a string, got {value!r}")
    value = value.strip()
    if nonempty and not value:
        raise FieldError(f"{where}{key}", "empty")
    return value


def get_strings(obj: dict[str, Any], key: str, *, where: str = "") -> tuple[str, ...]:
    """A list-of-strings field, stripped; missing or null gives ()."""
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise FieldError(f"{where}{key}", f"expected a list of strings, got {value!r}")
    return tuple(s.strip() for s in value)


def get_list(obj: dict[str, Any], *keys: str, where: str = "") -> list[Any]:
    """A list field (the first of ``keys`` present)."""
    key, value = get_field(obj, keys, where)
    if not isinstance(value, list):
        raise FieldError(f"{where}{key}", f"expected a list, got {type(value).__name__}")
    return value
