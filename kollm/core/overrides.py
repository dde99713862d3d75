"""Dotted overrides and choice checks for a config made of dataclass sections (Megatron-Bridge style).

Generic: nothing here knows kollm's sections. `kollm.config.PipelineConfig` is one such config;
`section.key=value` strings change it (`apply_overrides`), `check_choices` checks every field typed
`Literal[...]`, `check_sizes` every integer field.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, Literal

from kollm.core.errors import KollmError


def _field_types(obj) -> dict[str, typing.Any]:
    return typing.get_type_hints(type(obj))


def _parse_value(raw: str, typ, key: str):
    origin = typing.get_origin(typ)
    try:
        if typ is bool:
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if typ is int:
            return int(raw)
        if typ is float:
            return float(raw)
        if typ is str or origin is Literal:  # its choices are checked with the rest (check_choices)
            return raw
        if origin is list and not raw.lstrip().startswith("["):  # a,b,c for a list of words
            return [w.strip() for w in raw.split(",") if w.strip()]
        if origin is list:
            value = json.loads(raw)
            if not isinstance(value, list):
                raise ValueError(raw)
            return value
    except (ValueError, json.JSONDecodeError):
        name = getattr(typ, "__name__", str(typ))
        raise KollmError(f"override {key}={raw!r}: expected a value of type {name}") from None
    raise KollmError(f"override {key}: unsupported type {typ}")


def valid_keys(cfg) -> list[str]:
    keys = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            keys += [f"{f.name}.{g.name}" for g in dataclasses.fields(value)]
        else:
            keys.append(f.name)
    return keys


def apply_overrides(cfg, overrides: list[str]):
    """Apply `section.key=value` strings in order; unknown keys and bad values raise KollmError."""
    for item in overrides:
        if "=" not in item:
            raise KollmError(f"override {item!r} is not of the form section.key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        target = cfg
        for part in parts[:-1]:
            child = getattr(target, part, None)
            if not dataclasses.is_dataclass(child):
                raise KollmError(_unknown_key(cfg, key))
            target = child
        types = _field_types(target)
        leaf = parts[-1]
        if leaf not in types or dataclasses.is_dataclass(getattr(target, leaf)):
            raise KollmError(_unknown_key(cfg, key))
        setattr(target, leaf, _parse_value(raw, types[leaf], key))
    return cfg


def _unknown_key(cfg, key: str) -> str:
    import difflib

    keys = valid_keys(cfg)
    close = difflib.get_close_matches(key, keys, n=3)
    hint = (
        f"; did you mean {', '.join(close)}?"
        if close
        else f"; valid sections: {', '.join(f.name for f in dataclasses.fields(cfg))}"
    )
    return f"unknown override key {key!r}{hint}"


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls, data: dict):
    """An instance of the config class `cls` from `to_dict`'s output (a run's config.json, a manifest's config)."""
    cfg = cls()
    for f in dataclasses.fields(cfg):
        if f.name not in data:
            continue
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            section: Any = type(value)  # a dataclass section: built from its recorded fields
            setattr(cfg, f.name, section(**data[f.name]))
        else:
            setattr(cfg, f.name, data[f.name])
    return cfg


def _section_fields(cfg):
    """(`section.name`, value, type) for every field of every section."""
    for section in dataclasses.fields(cfg):
        obj = getattr(cfg, section.name)
        if not dataclasses.is_dataclass(obj):
            continue
        for name, typ in _field_types(obj).items():
            yield f"{section.name}.{name}", getattr(obj, name), typ


def _shown(choices: tuple) -> str:
    return ", ".join(c if c else "'' (off)" for c in choices)


def check_choices(cfg) -> None:
    """Every field typed `Literal[...]` holds one of its choices, and every item of a `list[Literal[...]]` field one
    of the item's: the one check of every choice in the config."""
    for key, value, typ in _section_fields(cfg):
        if typing.get_origin(typ) is Literal and value not in typing.get_args(typ):
            raise KollmError(f"{key}={value!r}: choose {_shown(typing.get_args(typ))}")
        item = typing.get_args(typ)[0] if typing.get_origin(typ) is list else None
        if typing.get_origin(item) is Literal:
            choices = typing.get_args(item)
            wrong = [v for v in value if v not in choices] if isinstance(value, list) else [value]
            if wrong:
                raise KollmError(f"{key}={value!r}: {wrong[0]!r} is not one of {_shown(choices)}")


def int_fields(cfg):
    """(section.name, value, is_list) for every field typed `int` or `list[int]`, in every section."""
    for key, value, typ in _section_fields(cfg):
        if typ is int or typ == list[int]:
            yield key, value, typ is not int


def check_sizes(cfg, zero_allowed: dict[str, str], reasons: dict[str, str] | None = None) -> None:
    """No integer field is negative, and none but those of `zero_allowed` is 0: `pretrain.steps=-5` is refused in
    one line, before any division by it or any stage started with it. `zero_allowed`: the
    `section.field` keys where 0 means something (and what); `reasons`: why a field must be >= 1, where that is not
    plain."""
    for key, value, is_list in int_fields(cfg):
        low = 0 if key in zero_allowed else 1
        items = value if is_list and isinstance(value, list) else [value]
        if (is_list and not isinstance(value, list)) or not all(type(v) is int and v >= low for v in items):
            need = f"an integer >= 0 ({zero_allowed[key]})" if low == 0 else "a positive integer (>= 1)"
            why = f": {reasons[key]}" if reasons and key in reasons else ""
            raise KollmError(f"{key}={value!r}: {'each must be' if is_list else 'must be'} {need}{why}")
