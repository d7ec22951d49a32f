"""A YAML task's rows: read its files once, check every row, split, sample.

What a user's file may hold, and what happens to it:

- an empty input or label (a blank cell, `null`, spaces): refused with the file and row,
  or dropped and counted with `source.drop_invalid: true` — never the text "nan";
- a label with stray spaces or capitals: stripped and case-folded before `label_map`,
  then spelled as in `labels`; a label that is still unknown is refused;
- duplicate ids (in the id column) within a split: refused; without an id column a row's
  id comes from its text, so ids are stable when the file is reordered;
- the same input twice in a split: counted and reported;
- an input in both a training split (train, pool) and an evaluation split (validation,
  test): refused as leakage unless `source.allow_overlap: true`.

Splits carved out of the train rows by `source.split_fractions` are assigned by the
stratified hash order of the rows' ids with a fixed salt, so they never change with the
run's seed. Caps (`train_size`, ...) take a prefix of the stratified order seeded with
the run's seed (`raysys.tasks.sampling`).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raysys.errors import UserError
from raysys.tasks.kinds import KINDS, GoldError
from raysys.tasks.loaders import POOL, TaskSpec, is_empty, read_hub
from raysys.tasks.sampling import SampleReport, sample_report, split_by_fractions, stratified_order
from raysys.tasks.sources import (
    ReadOptions,
    Record,
    dataset_dict_splits,
    read_dataset_dict,
    read_table,
)

log = logging.getLogger(__name__)

Row = dict[str, Any]
TRAINING = ("train", POOL)
EVALUATION = ("validation", "test")
_SPLIT_SALT = "raysys-split"  # split_fractions never depend on the run's seed


def normalize_text(text: str) -> str:
    """What counts as "the same input": case and whitespace do not matter."""
    return " ".join(str(text).casefold().split())


@dataclass
class FileTask:
    """One YAML task's rows, read and checked once per process."""

    spec: TaskSpec
    base_dir: Path
    notes: list[str] = field(default_factory=list)  # counts worth telling the user
    _splits: dict[str, list[Row]] | None = None

    def all_rows(self) -> dict[str, list[Row]]:
        """Every checked row of every split, in file order."""
        if self._splits is None:
            self._splits = self._build()
        return self._splits

    def rows(self, sizes: dict[str, int], seed: int) -> dict[str, list[Row]]:
        """The requested splits, each capped to a stratified sample of the whole split."""
        out = {}
        for split, n in sizes.items():
            rows = self.all_rows().get(split)
            if not rows:
                raise UserError(f"task {self.spec.name}: split {split} holds no rows")
            out[split] = stratified_order(rows, seed, self._by)[:n]
        return out

    def reports(self, sizes: dict[str, int], seed: int) -> list[SampleReport]:
        used = self.rows(sizes, seed)
        labelled = self._by is not None
        return [
            sample_report(self.spec.name, s, self.all_rows()[s], used[s], labelled) for s in used
        ]

    @property
    def _by(self) -> str | None:
        return "gold" if self.spec.kind == "classification" else None

    # ------------------------------------------------------------------ building

    def _build(self) -> dict[str, list[Row]]:
        raw = self._read()
        splits = {split: self._rows_of(split, recs) for split, recs in raw.items()}
        if fractions := self.spec.source.split_fractions:
            carved = split_by_fractions(splits.pop("train"), fractions, _SPLIT_SALT, self._by)
            splits |= {s: [dict(r, split=s) for r in rows] for s, rows in carved.items()}
        for split, rows in splits.items():
            for r in rows:
                r["id"] = f"{self.spec.name}-{split}-{r['id']}"
            self._note_duplicates(split, rows)
        self._check_overlap(splits)
        return {s: splits[s] for s in ("train", "validation", "test", POOL) if s in splits}

    def _read(self) -> dict[str, list[Record]]:
        src = self.spec.source
        opts = ReadOptions(src.format, src.encoding, src.delimiter, src.sheet, self._field)
        if src.format == "hub":
            return {s: _hub_records(src.hub_id or "", name) for s, name in src.splits.items()}
        if src.file:
            path = (self.base_dir / src.file).resolve()
            names = dataset_dict_splits(path)
            if names is not None:
                return {s: read_dataset_dict(path, s, opts) for s in names if s in _KNOWN}
            if not src.split_fractions:
                raise UserError(
                    f"{self._field}: source.file: {path.name} is one table; add "
                    "source.split_fractions (e.g. {validation: 0.1, test: 0.2}) to split it"
                )
            return {"train": read_table(path, opts)}
        return {s: read_table((self.base_dir / f).resolve(), opts) for s, f in src.splits.items()}

    @property
    def _field(self) -> str:
        return f"task {self.spec.name}"

    def _rows_of(self, split: str, records: list[Record]) -> list[Row]:
        rows, dropped, seen = [], Counter(), {}
        for rec in records:
            try:
                row = self._row(split, rec)
            except _Invalid as bad:
                if not (self.spec.source.drop_invalid and bad.droppable):
                    raise UserError(f"task {self.spec.name}: {rec.where}: {bad}") from None
                dropped[bad.reason] += 1
                continue
            if row["id"] is not None and (first := seen.get(row["id"])) is not None:
                raise UserError(
                    f"task {self.spec.name}: {rec.where}: id {row['id']!r} is also on "
                    f"{first}; ids must be unique, fix the id column ({self.spec.columns.id})"
                )
            seen[row["id"]] = rec.where
            rows.append(row)
        if dropped:
            what = ", ".join(f"{n} {why}" for why, n in dropped.items())
            self.notes.append(f"{split}: dropped {what} (source.drop_invalid)")
            log.warning("task %s: %s split: dropped %s rows", self.spec.name, split, what)
        if not rows:
            src = self.spec.source
            where = Path(src.splits.get(split) or src.file or split).name
            raise UserError(
                f"task {self.spec.name}: split {split} ({where}) holds no usable rows; add "
                f"rows or remove {split} from source.splits"
            )
        return _content_ids(rows)

    def _row(self, split: str, rec: Record) -> Row:
        spec, values = self.spec, rec.values
        if spec.source.format in ("finben", "hub"):
            inp = values.get("text", values.get("query"))
            gold, rid = values.get("answer"), values.get("id")
        else:
            needed = [spec.columns.input] + ([spec.columns.gold] if split != POOL else [])
            self._require(needed, split, rec, "set columns.input / columns.gold")
            inp, gold = values.get(spec.columns.input), values.get(spec.columns.gold)
            rid = values.get(spec.columns.id) if spec.columns.id else None
        if is_empty(inp):
            raise _Invalid("empty input", f"empty input ({spec.columns.input})")
        if spec.columns.id and is_empty(rid):
            raise _Invalid("empty id", f"empty id ({spec.columns.id})")
        row = {
            "id": None if rid is None else str(rid).strip(),
            "task": spec.name,
            "split": split,
            "input": str(inp),
            "gold": self._gold(gold, split),
        }
        # train rows only: SFT trains on it; an evaluation split does not need it, and a
        # pool's labels come from synthesis, which a rationale in the file may contradict
        if spec.columns.reasoning and split == "train":
            self._require([spec.columns.reasoning], split, rec, "fix or remove columns.reasoning")
            why = values[spec.columns.reasoning]
            row["reasoning"] = "" if is_empty(why) else str(why).strip()
        return row

    def _require(self, columns: list[str], split: str, rec: Record, fix: str) -> None:
        """Each of `columns` is in the record, or one line naming it and the columns there."""
        for c in columns:
            if c not in rec.values:
                raise UserError(
                    f"task {self.spec.name}: {rec.where}: column {c!r} not in split {split} "
                    f"(columns: {', '.join(map(str, rec.values))}); {fix} in the task file"
                )

    def _gold(self, value: Any, split: str) -> str | None:
        spec = self.spec
        if is_empty(value):
            if split == POOL:
                return None  # unlabeled: what a pool is for
            raise _Invalid("empty label", f"empty label ({spec.columns.gold})")
        raw = str(value).strip()
        folded = {k.strip().casefold(): v for k, v in spec.label_map.items()}
        mapped = folded.get(raw.casefold(), raw).strip()
        try:
            return KINDS[spec.kind].read_gold(tuple(spec.labels), mapped, raw)
        except GoldError as e:  # never dropped: a mapping or kind mistake, not a bad row
            raise _Invalid(e.reason, str(e), refusable=False) from None

    def _note_duplicates(self, split: str, rows: list[Row]) -> None:
        counts = Counter(normalize_text(r["input"]) for r in rows)
        extra = sum(n - 1 for n in counts.values() if n > 1)
        if extra:
            self.notes.append(f"{split}: {extra} duplicate input(s)")
            log.warning(
                "task %s: the %s split repeats %d input(s) (same text, other rows)",
                self.spec.name,
                split,
                extra,
            )

    def _check_overlap(self, splits: dict[str, list[Row]]) -> None:
        evaluation = {normalize_text(r["input"]): r for s in EVALUATION for r in splits.get(s, [])}
        for split in TRAINING:
            shared = [r for r in splits.get(split, []) if normalize_text(r["input"]) in evaluation]
            if not shared:
                continue
            other = evaluation[normalize_text(shared[0]["input"])]
            what = (
                f"{len(shared)} input(s) of {split} also in {other['split']} (first: "
                f"{shared[0]['input'][:60]!r})"
            )
            if not self.spec.source.allow_overlap:
                raise UserError(
                    f"task {self.spec.name}: {what}: evaluation inputs must not be trained "
                    "on; remove them, or set source.allow_overlap: true"
                )
            self.notes.append(f"{what}, allowed by source.allow_overlap")
            log.warning("task %s: %s (source.allow_overlap)", self.spec.name, what)


_KNOWN = ("train", "validation", "test", POOL)


class _Invalid(ValueError):
    """A row that `drop_invalid` may drop (or, with `refusable=False`, never)."""

    def __init__(self, reason: str, message: str, refusable: bool = True) -> None:
        super().__init__(
            message
            + ("; fill it, or set source.drop_invalid: true to drop such rows" if refusable else "")
        )
        self.reason = reason
        self.droppable = refusable


def _content_ids(rows: list[Row]) -> list[Row]:
    """Rows without an id column get one from their text (the n-th repeat of a text gets
    `-n`), so an id names the same row however the file is ordered."""
    seen: Counter[str] = Counter()
    for r in rows:
        if r["id"] is None:
            base = hashlib.sha256(r["input"].encode()).hexdigest()[:12]
            seen[base] += 1
            r["id"] = base if seen[base] == 1 else f"{base}-{seen[base]}"
    return rows


def _hub_records(hub_id: str, split: str) -> list[Record]:
    return [
        Record(rec, f"hub {hub_id} {split} row {i + 1}")
        for i, rec in enumerate(read_hub(hub_id, split))
    ]


def read_pool_file(task: Any, path: Path, source: Any = None) -> list[Row]:
    """Unlabeled inputs for synthesis from a file, read like the task's own files (its
    encoding, delimiter and columns for a YAML task; `input`/`text`, optional
    `gold`/`label` and `id` columns otherwise). Gold, where present, is held back to
    score the kept labels."""
    from raysys.tasks.loaders import Source

    if isinstance(source, FileTask):
        spec = source.spec
    else:
        spec = TaskSpec(
            name=task.name,
            kind=task.kind,
            prompt=task.prompt_template,
            labels=list(task.labels),
            source=Source(splits={POOL: str(path)}),
        )
        spec = spec.model_copy(update={"columns": _guess_columns(path, spec)})
    pool_source = spec.source.model_copy(
        update={"splits": {POOL: str(path.resolve())}, "file": None, "split_fractions": {}}
    )
    pool_task = FileTask(spec.model_copy(update={"source": pool_source}), path.resolve().parent)
    return pool_task.all_rows()[POOL]


def _guess_columns(path: Path, spec: TaskSpec) -> Any:
    from raysys.tasks.loaders import Columns

    opts = ReadOptions(field=f"pool {path.name}")
    head = read_table(path.resolve(), opts)
    cols = set(head[0].values) if head else set()
    pick = lambda *names: next((n for n in names if n in cols), names[0])  # noqa: E731
    return Columns(
        input=pick("input", "text", "sentence"),
        gold=pick("gold", "label", "answer"),
        id="id" if "id" in cols else None,
    )
