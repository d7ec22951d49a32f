"""Reading configs: YAML (no aliases, bounded size and depth), `a.b=c` overrides, input
paths made absolute, pydantic validation with one-line errors.

Imports nothing from raysys but `errors` and `uris` (the bottom layer): every other
module may import the config, the config imports none of them.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from raysys.config.paths import resolve_paths, resolved
from raysys.errors import ConfigError, clip

C = TypeVar("C", bound=BaseModel)


def load_config(cls: type[C], path: str | os.PathLike | None, overrides: list[str] = ()) -> C:
    """Read `path` (optional), apply `a.b=c` overrides, validate into `cls`.

    Input files a config names (task YAMLs, data, cocktails, pools, adapters) are made
    absolute here: relative to the YAML file that names them, or for an override to the
    working directory. Trials and workers run elsewhere; the path must not depend on it.
    """
    # Start from the kind's explicit defaults (e.g. the quickstart's lr), so setting one
    # field of a section keeps the kind's other defaults for that section; everything
    # else (including method-dependent defaults) is resolved by validation.
    file_data = _read_yaml(path) if path is not None else {}
    if path is not None:
        resolve_paths(file_data, Path(path).resolve().parent)
    data = _merge(_explicit_defaults(cls), file_data)
    _epochs_release_steps(file_data, data)
    given: dict[str, Any] = {}
    for item in overrides:
        _apply_override(data, item)
        _apply_override(given, item)
    _epochs_release_steps(given, data)
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(cls, e, path)) from None


def resolve_run_id(cfg: Any) -> str:
    return cfg.run.run_id or _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")


def with_run_id(cfg: C) -> C:
    """`cfg` with its run id fixed once (a timestamp when none was given), so every
    place that derives the run directory names the same one."""
    run = cfg.run.model_copy(update={"run_id": resolve_run_id(cfg)})  # type: ignore[attr-defined]
    return cfg.model_copy(update={"run": run})


def dump_config(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def _explicit_defaults(cls: type[BaseModel]) -> dict[str, Any]:
    """What a config kind sets beyond its sections' own defaults (e.g. the quickstart's lr)."""
    out: dict[str, Any] = {}
    for name, field in cls.model_fields.items():
        if isinstance(field.default, BaseModel) and (sub := _explicit(field.default)):
            out[name] = sub
    return out


def _explicit(model: BaseModel) -> dict[str, Any]:
    """The fields set explicitly in `model` and, recursively, in its sections."""
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            sub = _explicit(value)
            if sub:
                out[name] = sub
        elif name in model.model_fields_set:
            out[name] = value.model_dump() if isinstance(value, BaseModel) else value
    return out


def _epochs_release_steps(layer: dict[str, Any], data: dict[str, Any]) -> None:
    """A training section whose `layer` (the file, then the overrides) sets `epochs` but
    not `max_steps` trains for those epochs: a `max_steps` from an earlier layer (e.g. the
    pipeline's default DPO: 8 steps) would otherwise win silently."""
    for key, sub in layer.items():
        if isinstance(sub, dict) and isinstance(data.get(key), dict):
            if "epochs" in sub and "max_steps" not in sub and "max_steps" in data[key]:
                data[key]["max_steps"] = None
            _epochs_release_steps(sub, data[key])


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping key given twice: PyYAML would silently keep the last value."""


# A config, task or cocktail file is a few KB; these bounds keep a hostile one (a "billion
# laughs" of aliases, a 20,000-deep list) from taking minutes, gigabytes or the stack.
MAX_YAML_BYTES = 1 * 2**20


MAX_YAML_DEPTH = 64


class YamlShapeError(yaml.YAMLError):
    """An alias, anchor or nesting depth raysys does not accept."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


class _StrictLoader(yaml.SafeLoader):
    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise YamlShapeError(
                f"YAML aliases (*{event.anchor}) are not accepted; write the value out",
                event.start_mark,
            )
        if getattr(event, "anchor", None):
            raise YamlShapeError(
                f"YAML anchors (&{event.anchor}) are not accepted; write the value out",
                event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise YamlShapeError(
                    f"nested more than {MAX_YAML_DEPTH} levels deep; flatten it", event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # more than 4300 digits: Python refuses to convert it
            raise YamlShapeError(
                f"a number of {len(str(node.value)):,} digits; no setting takes one that "
                "long, shorten it",
                node.start_mark,
            ) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            # `<<:` merges are overridden on purpose; complex keys are left to PyYAML.
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                key_node, yaml.ScalarNode
            ):
                continue
            key = self.construct_object(key_node)
            try:
                seen = first.get(key)
            except TypeError:  # unhashable: PyYAML reports it
                continue
            if seen is not None:
                raise DuplicateKeyError(
                    None,
                    None,
                    f"key {key!r} is given twice (also on line {seen}); keep one of them",
                    key_node.start_mark,
                )
            first[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


# the int constructor is looked up by tag, not by method: register the bounded one
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)


def load_yaml_text(text: str) -> Any:
    """`yaml.safe_load`, except that a key given twice in a mapping is a `DuplicateKeyError`
    and aliases, anchors and deep nesting are a `YamlShapeError`."""
    if len(text) > MAX_YAML_BYTES:
        raise YamlShapeError(
            f"{len(text):,} characters, over the {MAX_YAML_BYTES:,} a config may hold", None
        )
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: no arbitrary objects
    except ValueError as e:  # an int of more than 4300 digits: Python refuses to convert it
        if isinstance(e, yaml.YAMLError):
            raise
        raise YamlShapeError(
            f"a value YAML cannot convert ({str(e)[:80]}); shorten it or quote it", None
        ) from None


def read_yaml_file(p: Path) -> Any:
    """A YAML file's data; a missing or non-UTF-8 file or bad YAML is a one-line ConfigError."""
    if not p.is_file():
        raise ConfigError(f"config file not found: {p} (pass the path of a YAML file)")
    if p.stat().st_size > MAX_YAML_BYTES:
        raise ConfigError(f"{p}: {p.stat().st_size:,} bytes; a YAML config is at most 1 MiB")
    try:
        return load_yaml_text(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{p}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
            "save it as UTF-8"
        ) from None
    except DuplicateKeyError as e:
        raise ConfigError(f"{p} line {e.problem_mark.line + 1}: {e.problem}") from None
    except YamlShapeError as e:
        mark = e.problem_mark
        raise ConfigError(f"{p}{f' line {mark.line + 1}' if mark else ''}: {e.problem}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise ConfigError(f"{p}{where}: {problem}; fix the YAML syntax") from None


def _read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    data = read_yaml_file(p)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{p}: top level must be a mapping of sections, got {type(data).__name__}"
        )
    return data


def _apply_override(data: dict[str, Any], item: str) -> None:
    key, sep, raw = item.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
        raise ConfigError(
            f"override {item!r} must look like section.key=value, e.g. train.learning_rate=1e-4"
        )
    try:
        value = load_yaml_text(raw) if raw != "" else None
    except YamlShapeError as e:
        raise ConfigError(f"override {key}: {e.problem}") from None
    except yaml.YAMLError:
        value = raw
    value = resolved(key, value, Path.cwd())
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {item!r}: {part} is a value, not a section")
        node = child
    node[parts[-1]] = value


def _format_errors(cls: type[BaseModel], err: ValidationError, path: Any) -> str:
    from raysys.uris import redact

    msgs = []
    for e in err.errors(include_url=False):
        loc = ".".join(str(p) for p in e["loc"]) or "<top>"
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(cls, e["loc"][:-1])
            msgs.append(f"{loc}: unknown key; allowed keys here: {', '.join(allowed)}")
        elif e["type"] in ("value_error", "assertion_error"):
            msgs.append(f"{loc}: {e['msg'].removeprefix('Value error, ')}")
        else:
            msgs.append(f"{loc}: {e['msg']} (got {redact(clip(e.get('input'), 120))})")
    where = f"{path}: " if path else ""
    return redact(where + "; ".join(msgs))


def _allowed_keys(cls: type[BaseModel], loc: tuple) -> list[str]:
    model: Any = cls
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
    return list(getattr(model, "model_fields", {}))
