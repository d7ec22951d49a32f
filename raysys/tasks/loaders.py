"""Tasks defined in YAML over local files or hub datasets (FinBen / Open FinLLM Leaderboard).

A task file names its source, how its columns map onto task rows
`{id, task, split, input, gold}`, its labels, prompt and metric kind:

```yaml
name: my_sentiment
kind: classification            # classification | ner | numeric | freetext
labels: [positive, negative, neutral]
prompt: "Classify the sentiment.\n{input}\nEnd with 'Answer: <label>'."
source:
  format: csv                   # jsonl | json | csv | parquet | sentence_at_label | hub
  splits: {train: train.csv, test: test.csv}   # relative to the YAML file
columns: {input: text, gold: label}          # optional id column: {id: uid}
label_map: {"0": negative, "1": neutral, "2": positive}   # optional
```

FinBen rows `{id, query, answer, choices, gold, text}` load with `format: finben`
(input = `text`, gold = `answer`), from a local file or, with `format: hub`, from
the hub by id or alias (`fpb` -> `TheFinAI/flare-fpb`).

An optional `answer_regex` replaces the default `Answer: <label>` reading. It needs
exactly one capture group, and a nested repeat such as `(a+)+` or `([a-z]+ ?)*` is
refused when the file loads: Python's `re` has no timeout, and such a pattern can
backtrack for minutes on one output that almost matches. Repeat once instead
(`Answer: *(.+)`). A numeric task's golds must be numbers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from raysys.config import DuplicateKeyError, Section, load_yaml_text
from raysys.errors import UserError
from raysys.tasks.base import SPLITS, Task
from raysys.tasks.gen.numeric_qa import normalize_number

# Short names -> hub ids; several ids where mirrors exist (ids differ between sources).
FINBEN_ALIASES: dict[str, list[str]] = {
    "fpb": ["TheFinAI/flare-fpb", "ChanceFocus/flare-fpb"],
    "fiqasa": ["TheFinAI/flare-fiqasa", "ChanceFocus/flare-fiqasa"],
    "headlines": ["TheFinAI/flare-headlines", "ChanceFocus/flare-headlines"],
    "fomc": ["TheFinAI/flare-fomc", "ChanceFocus/flare-fomc"],
    "ner": ["TheFinAI/flare-ner", "ChanceFocus/flare-ner"],
    "finqa": ["TheFinAI/flare-finqa", "ChanceFocus/flare-finqa"],
    "convfinqa": ["TheFinAI/flare-convfinqa", "ChanceFocus/flare-convfinqa"],
    "multifin-en": ["TheFinAI/flare-multifin-en", "ChanceFocus/flare-multifin-en"],
    "causal20-sc": ["TheFinAI/flare-causal20-sc", "ChanceFocus/flare-causal20-sc"],
    "fnxl": ["TheFinAI/flare-fnxl"],
    "tsa": ["TheFinAI/flare-tsa"],
}


class Columns(Section):
    input: str = "text"
    gold: str = "label"
    id: str | None = None


class Source(Section):
    format: Literal["jsonl", "json", "csv", "parquet", "sentence_at_label", "finben", "hub"]
    splits: dict[str, str] = Field(..., description="split -> file (or hub split name)")
    hub_id: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Source:
        bad = [s for s in self.splits if s not in SPLITS]
        if bad:
            raise ValueError(f"split names must be among {', '.join(SPLITS)}; got {bad}")
        if not self.splits:
            raise ValueError("name at least one split, e.g. splits: {test: test.jsonl}")
        if self.format == "hub" and not self.hub_id:
            raise ValueError("format hub needs hub_id (a hub dataset id or alias like fpb)")
        return self


class TaskSpec(Section):
    name: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_-]*$")
    kind: Literal["classification", "ner", "numeric", "freetext"]
    prompt: str
    labels: list[str] = []
    description: str = ""
    answer_regex: str | None = None
    source: Source
    columns: Columns = Columns()
    label_map: dict[str, str] = {}

    @field_validator("answer_regex")
    @classmethod
    def _answer_regex(cls, v: str | None) -> str | None:
        # A field validator, so errors carry the field's name (a model one has no location).
        if v is None:
            return v
        try:
            groups = re.compile(v).groups
        except re.error as e:
            raise ValueError(f"does not compile ({e}); fix the pattern") from None
        if groups != 1:
            raise ValueError(
                f"must have exactly one capture group around the answer, got {groups}; "
                r"e.g. 'Answer:\s*(\w+)'"
            )
        if has_nested_repeat(v):
            # Python's re has no timeout: rejecting the pattern is the only bound.
            raise ValueError(
                f"'{v}' has a nested repeat (an unbounded repeat inside another, like "
                "(a+)+), which can backtrack exponentially on an output that almost "
                r"matches; repeat only once, e.g. 'Answer:\s*(.+)'"
            )
        return v

    @model_validator(mode="after")
    def _check(self) -> TaskSpec:
        if "{input}" not in self.prompt:
            raise ValueError("prompt must contain {input} where the row's text goes")
        if self.kind == "classification" and len(self.labels) < 2:
            raise ValueError("a classification task needs labels: [a, b, ...] (at least 2)")
        return self

    def to_task(self) -> Task:
        return Task(
            name=self.name,
            kind=self.kind,
            prompt_template=self.prompt,
            labels=tuple(self.labels),
            splits=tuple(s for s in SPLITS if s in self.source.splits),
            description=self.description or f"{self.kind} task from {self.source.format}",
            answer_re=re.compile(self.answer_regex, re.IGNORECASE) if self.answer_regex else None,
        )


def has_nested_repeat(pattern: str) -> bool:
    r"""True when an unbounded repeat sits inside another (`(a+)+`, `(\s*\w+)*`, `(.*)*`).

    That shape is what backtracks exponentially (catastrophic backtracking) on text
    that almost matches. A heuristic on the parsed pattern: it does not see overlapping
    alternatives under one repeat (`(a|a)*`); possessive repeats and atomic groups,
    which never backtrack, reset it.
    """
    try:
        from re import _parser as sre  # Python >= 3.11
    except ImportError:  # pragma: no cover - Python 3.10
        import sre_parse as sre  # type: ignore[no-redef]

    repeats = (sre.MAX_REPEAT, sre.MIN_REPEAT)
    barriers = tuple(
        op
        for op in (getattr(sre, "POSSESSIVE_REPEAT", None), getattr(sre, "ATOMIC_GROUP", None))
        if op is not None
    )

    def walk(items: Any, inside: bool) -> bool:
        for op, av in items:
            if op in repeats:
                unbounded = av[1] == sre.MAXREPEAT
                if (unbounded and inside) or walk(av[2], inside or unbounded):
                    return True
            elif op in barriers:
                if walk(av[-1] if isinstance(av, tuple) else av, False):
                    return True
            elif op == sre.SUBPATTERN and walk(av[-1], inside):
                return True
            elif op == sre.BRANCH and any(walk(b, inside) for b in av[1]):
                return True
            elif op in (sre.ASSERT, sre.ASSERT_NOT) and walk(av[1], inside):
                return True
            elif op == sre.GROUPREF_EXISTS and any(walk(b, inside) for b in av[1:] if b):
                return True
        return False

    return walk(sre.parse(pattern), False)


def load_task_spec(path: str | Path) -> TaskSpec:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"task file not found: {p} (pass the path of a task YAML file)")
    try:
        data = load_yaml_text(p.read_text(encoding="utf-8")) or {}
        return TaskSpec.model_validate(data)
    except UnicodeDecodeError as e:
        raise UserError(_not_utf8(p, e)) from None
    except DuplicateKeyError as e:  # PyYAML alone would keep the last value silently
        raise UserError(f"{p} line {e.problem_mark.line + 1}: {e.problem}") from None
    except yaml.YAMLError as e:
        raise UserError(f"{p}: invalid YAML ({getattr(e, 'problem', e)}); fix the syntax") from None
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        loc = ".".join(str(x) for x in err["loc"]) or "<top>"
        msg = err["msg"].removeprefix("Value error, ")
        raise UserError(f"{p}: {loc}: {msg}") from None


def load_rows(
    spec: TaskSpec, base_dir: Path, sizes: dict[str, int] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Rows per split; `sizes` caps each split (first N rows, file order)."""
    out = {}
    for split, where in spec.source.splits.items():
        if sizes is not None and split not in sizes:
            continue
        records = _read(spec, split, where, base_dir)
        rows = [_row(spec, split, i, rec) for i, rec in enumerate(records)]
        if sizes is not None:
            rows = rows[: sizes[split]]
        if not rows:
            raise UserError(
                f"task {spec.name}: split {split} ({where}) holds no rows; add rows or "
                f"remove {split} from source.splits"
            )
        out[split] = rows
    return out


def _not_utf8(path: Path, e: UnicodeDecodeError) -> str:
    return (
        f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
        "save it as UTF-8"
    )


def _read(spec: TaskSpec, split: str, where: str, base_dir: Path) -> list[dict[str, Any]]:
    fmt = spec.source.format
    if fmt == "hub":
        return _read_hub(spec.source.hub_id or "", where)
    path = (base_dir / where).resolve()
    if not path.is_file():
        raise UserError(f"task {spec.name}: source.splits.{split}: file not found: {path}")
    if fmt == "sentence_at_label":
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise UserError(f"task {spec.name}: {_not_utf8(path, e)}") from None
        return [
            _sentence_at_label(line, path, n)
            for n, line in enumerate(text.splitlines(), 1)
            if line.strip()
        ]
    import pandas as pd

    readers = {
        "jsonl": lambda: pd.read_json(path, lines=True, dtype=False),
        "finben": lambda: pd.read_json(path, lines=path.suffix != ".json", dtype=False),
        "json": lambda: pd.read_json(path, dtype=False),
        "csv": lambda: pd.read_csv(path, dtype=str, keep_default_na=False),
        "parquet": lambda: pd.read_parquet(path),
    }
    try:
        return readers[fmt]().to_dict("records")
    except UnicodeDecodeError as e:  # a ValueError too; name the fix, not the codec
        raise UserError(f"task {spec.name}: {_not_utf8(path, e)}") from None
    except ValueError as e:
        raise UserError(f"task {spec.name}: cannot read {path} as {fmt}: {e}") from None


def _sentence_at_label(line: str, path: Path, n: int) -> dict[str, Any]:
    text, sep, label = line.rpartition("@")
    if not sep or not text.strip():
        raise UserError(f"{path}:{n}: expected 'sentence@label', got {line[:60]!r}")
    return {"text": text.strip(), "label": label.strip()}


def _hub_unreachable(timeout: float = 5.0) -> str | None:
    """Why the hub cannot be reached, or None. Saves datasets' minute of retries."""
    import os
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return None  # offline mode reads the local cache; let datasets try it
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError as e:
        return f"{url.hostname}: {e.strerror or type(e).__name__}"
    return None


def _read_hub(hub_id: str, split: str) -> list[dict[str, Any]]:
    import datasets

    ids = FINBEN_ALIASES.get(hub_id, [hub_id])
    errors = [why] if (why := _hub_unreachable()) else []
    for candidate in [] if errors else ids:
        try:
            return list(datasets.load_dataset(candidate, split=split))
        except Exception as e:  # the hub raises many types; all mean "not here"
            errors.append(f"{candidate}: {type(e).__name__}")
    raise UserError(
        f"cannot load {hub_id!r} split {split!r} from the Hugging Face hub "
        f"({'; '.join(errors)}); check the network or HF_TOKEN, or download it and use "
        "source.format: finben with a local file"
    )


def _row(spec: TaskSpec, split: str, i: int, rec: dict[str, Any]) -> dict[str, Any]:
    cols = spec.columns
    if spec.source.format in ("finben", "hub"):
        inp, gold, rid = rec.get("text", rec.get("query")), rec.get("answer"), rec.get("id")
    else:
        for c in (cols.input, cols.gold):
            if c not in rec:
                raise UserError(
                    f"task {spec.name}: column {c!r} not in split {split} (columns: "
                    f"{', '.join(map(str, rec))}); set columns.input / columns.gold"
                )
        inp, gold = rec[cols.input], rec[cols.gold]
        rid = rec.get(cols.id) if cols.id else None
    gold = spec.label_map.get(str(gold), str(gold))
    if spec.kind == "classification" and gold.lower() not in {lab.lower() for lab in spec.labels}:
        raise UserError(
            f"task {spec.name}: split {split} row {i}: label {gold!r} is not one of "
            f"{spec.labels}; add it to labels or map it with label_map"
        )
    if spec.kind == "numeric" and normalize_number(gold) is None:
        # Refused here: at scoring time it would fail after the whole engine pass.
        raise UserError(
            f"task {spec.name}: split {split} row {i}: gold {gold!r} is not a number; fix "
            "the row, or set kind: freetext to compare answers as text"
        )
    return {
        "id": f"{spec.name}-{split}-{rid if rid not in (None, '') else f'{i:06d}'}",
        "task": spec.name,
        "split": split,
        "input": str(inp),
        "gold": gold,
    }
