"""Tasks defined in YAML over users' own files or hub datasets (FinBen / Open FinLLM
Leaderboard).

A task file names its source, how its columns map onto task rows
`{id, task, split, input, gold}`, its labels, prompt and metric kind:

```yaml
name: my_sentiment
kind: classification            # a name in raysys.tasks.kinds.KINDS (ner, numeric, ...)
labels: [positive, negative, neutral]
prompt: "Classify the sentiment.\n{input}\nEnd with 'Answer: <label>'."
source:
  splits: {train: train.csv, test: test.csv}   # relative to this YAML file
  # or one file: file: all.csv + split_fractions: {validation: 0.1, test: 0.2}
  encoding: latin-1             # default utf-8
columns: {input: text, gold: label}          # optional: {id: uid, reasoning: rationale}
label_map: {"0": negative, "1": neutral, "2": positive}   # optional
```

Rows are checked as they are read (`raysys.tasks.rows`): empty inputs or labels, unknown
labels, duplicate ids and inputs shared between training and evaluation splits are one
line naming the file, the row and the fix. Every split cap is a stratified, seeded sample
of the whole split (`raysys.tasks.sampling`), never the head of the file.

An optional `answer_regex` replaces the default `Answer: <label>` reading. It needs
exactly one capture group, and a nested repeat such as `(a+)+` or `([a-z]+ ?)*` is
refused when the file loads: Python's `re` has no timeout, and such a pattern can
backtrack for minutes on one output that almost matches. Repeat once instead
(`Answer: *(.+)`). A numeric task's golds must be numbers.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from raysys.config import DuplicateKeyError, Section, load_yaml_text
from raysys.errors import UserError, clip
from raysys.tasks.base import SPLITS, BoundedPattern, Task, prompt_problem
from raysys.tasks.kinds import KINDS
from raysys.tasks.sources import FORMATS

# A split of unlabeled inputs for synthesis (gold optional: held back for scoring labels).
POOL = "pool"
SOURCE_SPLITS = (*SPLITS, POOL)

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
    reasoning: str | None = Field(
        None,
        description="a column of reasoning written before the answer (a rationale, a chain "
        "of thought): SFT targets become '<reasoning>\\nAnswer: <label>' where a row has one",
    )


class Source(Section):
    format: Literal[FORMATS] | None = Field(  # type: ignore[valid-type]
        None, description="None: from each file's suffix (.csv .tsv .jsonl .json .parquet .xlsx)"
    )
    splits: dict[str, str] = Field(
        default_factory=dict, description="split -> file (hub: the hub's split name)"
    )
    file: str | None = Field(
        None, description="one file with every row (split by split_fractions) or a DatasetDict"
    )
    split_fractions: dict[str, float] = Field(
        default_factory=dict, description="splits carved out of the train rows, e.g. test: 0.2"
    )
    encoding: str = Field("utf-8", min_length=1, description="text files: utf-8, latin-1, ...")
    delimiter: str | None = Field(
        None, min_length=1, max_length=1, description="csv: None sniffs , tab ; |"
    )
    sheet: str | int = Field(0, description="xlsx: sheet name or index from 0")
    hub_id: str | None = None
    drop_invalid: bool = Field(
        False, description="drop (and count) rows with an empty input or label instead of failing"
    )
    allow_overlap: bool = Field(
        False, description="allow inputs shared by train and validation/test (leakage)"
    )

    @model_validator(mode="after")
    def _check(self) -> Source:
        bad = [s for s in [*self.splits, *self.split_fractions] if s not in SOURCE_SPLITS]
        if bad:
            raise ValueError(f"split names must be among {', '.join(SOURCE_SPLITS)}; got {bad}")
        if bool(self.splits) == bool(self.file):
            raise ValueError(
                "give either source.splits (split -> file) or source.file (one file with "
                "source.split_fractions), e.g. splits: {test: test.csv}"
            )
        if self.format == "hub" and (not self.hub_id or self.file):
            raise ValueError(
                "format hub needs hub_id (a hub dataset id or alias like fpb) and splits"
            )
        self._check_fractions()
        return self

    def _check_fractions(self) -> None:
        fr = self.split_fractions
        if any(not (isinstance(v, float | int) and 0 < v < 1) for v in fr.values()):
            raise ValueError(f"split_fractions must each be in (0, 1), got {fr}")
        if sum(fr.values()) >= 1:
            raise ValueError(f"split_fractions must leave rows for train (sum < 1), got {fr}")
        if "train" in fr or POOL in fr:
            raise ValueError(
                "split_fractions names the splits carved out of train: validation/test"
            )
        if clash := set(fr) & set(self.splits):
            raise ValueError(f"{sorted(clash)[0]} is both a file in splits and a split fraction")
        if fr and self.splits and "train" not in self.splits:
            raise ValueError("split_fractions carve splits out of train; add a train file")


class TaskSpec(Section):
    name: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_-]*$")
    kind: Literal[tuple(KINDS)]  # type: ignore[valid-type]
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
            raise ValueError(
                f"{clip(v, 80)} has a nested repeat (a repeat inside a repeated group, like "
                "(a+)+ or (?:.*a){12}), which can backtrack exponentially on an output that "
                r"almost matches; repeat only once, e.g. 'Answer:\s*(.+)'"
            )
        if problem := slow_regex_problem(v):
            raise ValueError(problem)
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: list[str]) -> list[str]:
        labels = [str(x).strip() for x in v]
        folded = [x.casefold() for x in labels]
        if any(not x for x in labels) or len(set(folded)) != len(folded):
            raise ValueError(f"labels must be non-empty and distinct ignoring case, got {v}")
        return labels

    @model_validator(mode="after")
    def _check(self) -> TaskSpec:
        if problem := prompt_problem(self.prompt):
            raise ValueError(problem)
        if len(self.labels) < (least := KINDS[self.kind].min_labels):
            raise ValueError(f"a {self.kind} task needs labels: [a, b, ...] (at least {least})")
        return self

    def split_names(self, base_dir: Path) -> tuple[str, ...]:
        """The splits this task has; a DatasetDict `file` brings its own split names."""
        from raysys.tasks.sources import dataset_dict_splits

        src = self.source
        named = set(src.splits) | set(src.split_fractions)
        if src.file:
            found = dataset_dict_splits(base_dir / src.file)
            named |= set(found) & set(SOURCE_SPLITS) if found else {"train"}
        return tuple(s for s in SOURCE_SPLITS if s in named)

    def to_task(self, base_dir: Path) -> Task:
        names = self.split_names(base_dir)
        return Task(
            name=self.name,
            kind=self.kind,
            prompt_template=self.prompt,
            labels=tuple(self.labels),
            splits=tuple(s for s in SPLITS if s in names),
            description=self.description
            or f"{self.kind} task from {self.source.format or 'files'}",
            answer_re=BoundedPattern(self.answer_regex) if self.answer_regex else None,
        )


def has_nested_repeat(pattern: str) -> bool:
    r"""True when a repeat sits inside a repeated group (`(a+)+`, `(\s*\w+)*`, `(?:.*a){12}`).

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
                # A repeat whose length varies, inside a repeated group (bounded or not):
                # `(?:.*a){12}` backtracks like `(?:.*a)+`; a fixed count (`(?:,\d{3})+`)
                # splits text one way only.
                variable, repeating = av[0] != av[1], av[1] > 1
                if (variable and inside) or walk(av[2], inside or repeating):
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


# Outputs that make a backtracking pattern slow: long runs that almost match.
_PROBES = ("answer:" + " a" * 3000, "Answer: " + "a" * 6000 + "!", ("answer " * 800) + ":")


def slow_regex_problem(pattern: str, timeout: float = 0.2) -> str | None:
    """Why `pattern` is too slow to run on every output (it takes over `timeout` seconds on
    an adversarial probe of a few thousand characters), or None."""
    import regex

    compiled = regex.compile(pattern, regex.IGNORECASE | regex.VERSION0)
    for probe in _PROBES:
        try:
            compiled.findall(probe, timeout=timeout)
        except TimeoutError:
            return (
                f"{clip(pattern, 80)} takes over {timeout:g} s on a {len(probe):,}-character "
                "output (adjacent or nested repeats backtrack); use one repeat, e.g. "
                r"'Answer:\s*(\w+)'"
            )
    return None


def load_task_spec(path: str | Path) -> TaskSpec:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"task file not found: {p} (pass the path of a task YAML file)")
    try:
        data = load_yaml_text(p.read_text(encoding="utf-8")) or {}
        return TaskSpec.model_validate(data)
    except UnicodeDecodeError as e:
        raise UserError(
            f"{p}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
            "save the task YAML as UTF-8"
        ) from None
    except DuplicateKeyError as e:  # PyYAML alone would keep the last value silently
        raise UserError(f"{p} line {e.problem_mark.line + 1}: {e.problem}") from None
    except yaml.YAMLError as e:
        raise UserError(f"{p}: invalid YAML ({getattr(e, 'problem', e)}); fix the syntax") from None
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        loc = ".".join(str(x) for x in err["loc"]) or "<top>"
        msg = err["msg"].removeprefix("Value error, ")
        raise UserError(f"{p}: {loc}: {msg}") from None


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


def read_hub(hub_id: str, split: str) -> list[dict[str, Any]]:
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


def is_empty(value: Any) -> bool:
    """None, NaN, or text that is only whitespace: what pandas makes of an empty cell."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()
