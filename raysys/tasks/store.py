"""A run's task rows, materialised once into its run directory.

The driver of every job reads the users' files (or runs the generators) once, checks
and samples them, and writes what the run uses to `<run_dir>/tasks/<task>/`:

- `task.json`: the task's definition (kind, labels, prompt, answer regex, splits) and
  the names it was asked for by (a YAML path in a config);
- `<split>.parquet`: `{id, task, split, input, gold}` (and `reasoning` for a task with a
  `columns.reasoning` column) in the sample's order, so a smaller cap later is a prefix
  of the same stratified sample;
- `manifest.json` (written last: its presence marks the folder complete): sizes, seed,
  a sha256 fingerprint per split, the sample reports and what was dropped or noticed.

Trials, Train workers and engine actors never see the users' files or working
directory: they `load_run_tasks(<run_dir>/tasks)` and get the same rows on any node.
A folder already there is reused when it holds the sizes asked for (a resumed run keeps
the rows it started with, even if the source file changed since).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raysys.errors import UserError
from raysys.io import write_json, write_parquet
from raysys.tasks import Entry, build_splits, entry, register
from raysys.tasks.base import Task

log = logging.getLogger(__name__)

Row = dict[str, Any]
TASKS_DIR = "tasks"
POOL = "pool"


@dataclass
class Need:
    """What a run uses of one task: split -> rows, and where its pool comes from."""

    ref: str  # a task name or a YAML path, as the config names it
    sizes: dict[str, int] = field(default_factory=dict)
    pool: int | None = None  # inputs to label by synthesis
    pool_file: str | None = None  # unlabeled inputs from a file, else the pool split/generator
    pool_seed: int = 1000


@dataclass
class Prepared:
    """Every task a run needs, read and checked; written by `write` once the run directory
    may be written to (bad rows are refused before anything is)."""

    run_dir: Path
    seed: int
    todo: list[tuple[Need, dict[str, list[Row]], list[dict[str, Any]]]] = field(
        default_factory=list
    )
    folders: dict[str, Path] = field(default_factory=dict)  # task name -> its folder

    def rows(self) -> dict[str, dict[str, list[Row]]]:
        """Every task's rows by split (task name -> split -> rows), as the run will use
        them: read but not yet written, or already in the run directory."""
        import pyarrow.parquet as pq

        out = {entry(need.ref).task.name: rows for need, rows, _ in self.todo}
        for name, folder in self.folders.items():
            if name not in out:
                out[name] = {p.stem: pq.read_table(p).to_pylist() for p in folder.glob("*.parquet")}
        return out

    def write(self) -> dict[str, Path]:
        """Write what is not on disk yet; register every task from its folder."""
        for need, rows, reps in self.todo:
            name = entry(need.ref).task.name
            _write(self.folders[name], need, self.seed, rows, reps)
            load_task(self.folders[name], need.ref)
        self.todo = []
        return self.folders


def prepare(run_dir: Path, needs: list[Need], seed: int) -> Prepared:
    """Read and check what each task needs, writing nothing. Tasks the run directory
    already holds at these sizes (a resumed run) are loaded from there instead of their
    sources, so a run keeps the rows it started with."""
    out = Prepared(Path(run_dir), seed)
    for need in _merged(needs):
        name = entry(need.ref).task.name
        folder = out.run_dir / TASKS_DIR / name
        out.folders[name] = folder
        if _holds(folder, need, seed):
            load_task(folder, need.ref)
            reps = json.loads((folder / "manifest.json").read_text())["reports"]
        else:
            rows = _rows(need, seed)
            reps = _reports(entry(need.ref), need, rows)
            out.todo.append((need, rows, reps))
        for msg in (w for rep in reps for w in rep["warnings"]):
            log.warning("%s", msg)  # at the start of every run that uses the sample
    return out


def materialize(run_dir: Path, needs: list[Need], seed: int) -> dict[str, Path]:
    """`prepare` then `write`: each task's rows under `run_dir/tasks/<name>/`."""
    return prepare(run_dir, needs, seed).write()


def load_run_tasks(tasks_dir: Path) -> list[str]:
    """Register every task materialised under `tasks_dir` (in a trial or worker)."""
    names = []
    for folder in sorted(Path(tasks_dir).glob("*/manifest.json")):
        names.append(load_task(folder.parent).name)
    return names


def load_task(folder: Path, *aliases: str) -> Task:
    meta = json.loads((folder / "task.json").read_text())
    manifest = json.loads((folder / "manifest.json").read_text())
    task = Task(
        name=meta["name"],
        kind=meta["kind"],
        prompt_template=meta["prompt"],
        labels=tuple(meta["labels"]),
        splits=tuple(meta["splits"]),
        description=meta["description"],
        answer_re=_compile(meta.get("answer_regex")),
    )
    stored = _Stored(folder, manifest)
    register(
        Entry(task, stored.rows, folder, pool=POOL in manifest["sizes"]), *meta["refs"], *aliases
    )
    return task


def reports(tasks_dir: Path) -> dict[str, dict[str, Any]]:
    """Per task: its manifest's sample reports and notes (for `raysys status`/reports)."""
    return {
        p.parent.name: json.loads(p.read_text())
        for p in sorted(Path(tasks_dir).glob("*/manifest.json"))
    }


# --------------------------------------------------------------------------- writing


def _merged(needs: list[Need]) -> list[Need]:
    """One need per task: the largest size asked for each split."""
    by_name: dict[str, Need] = {}
    for need in needs:
        name = entry(need.ref).task.name
        have = by_name.setdefault(name, Need(need.ref, pool_seed=need.pool_seed))
        for split, n in need.sizes.items():
            have.sizes[split] = max(n, have.sizes.get(split, 0))
        if need.pool is not None:
            have.pool = max(need.pool, have.pool or 0)
            have.pool_file = have.pool_file or need.pool_file
    return list(by_name.values())


def _wanted(need: Need) -> dict[str, int]:
    return {**need.sizes, **({POOL: need.pool} if need.pool is not None else {})}


def _holds(folder: Path, need: Need, seed: int) -> bool:
    if not (folder / "manifest.json").is_file():
        return False
    manifest = json.loads((folder / "manifest.json").read_text())
    asked = {"sizes": _wanted(need), "seed": seed, "pool_file": need.pool_file}
    return all(manifest["asked"].get(k) == v for k, v in asked.items())


def pool_rows(need: Need, seed: int) -> list[Row]:
    """The pool `need` asks for, read and checked (nothing written)."""
    test = (
        build_splits(need.ref, {"test": need.sizes["test"]}, seed)["test"]
        if "test" in need.sizes
        else None
    )
    return _pool(entry(need.ref), need, test, seed)


def _rows(need: Need, seed: int) -> dict[str, list[Row]]:
    found = entry(need.ref)
    rows = build_splits(need.ref, need.sizes, seed) if need.sizes else {}
    if need.pool is not None:
        rows[POOL] = _pool(found, need, rows.get("test"), seed)
    return rows


def _write(
    folder: Path, need: Need, seed: int, rows: dict[str, list[Row]], reports: list[dict]
) -> None:
    found = entry(need.ref)
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_json(tmp / "task.json", _definition(found.task, need.ref))
    for split, split_rows in rows.items():
        write_parquet(tmp / f"{split}.parquet", [_clean(r) for r in split_rows])
    write_json(tmp / "manifest.json", _manifest(need, seed, rows, reports, found))
    shutil.rmtree(folder, ignore_errors=True)  # an older sample of other sizes
    tmp.rename(folder)  # atomic: readers see no folder or a whole one
    log.info(
        "task %s: %s rows materialised in %s",
        found.task.name,
        ", ".join(f"{s} {len(r)}" for s, r in rows.items()),
        folder,
    )


def _clean(row: Row) -> Row:
    gold = row.get("gold")
    out = {
        "id": str(row["id"]),
        "task": row["task"],
        "split": row["split"],
        "input": str(row["input"]),
        "gold": None if gold is None else str(gold),
    }
    if "reasoning" in row:  # a task with a `columns.reasoning` column: SFT targets use it
        out["reasoning"] = str(row["reasoning"] or "")
    return out


def _definition(task: Task, ref: str) -> dict[str, Any]:
    from raysys.tasks.base import Task as _Task

    default = _Task(task.name, task.kind, task.prompt_template, task.labels).answer_re
    custom = task.answer_re is not None and task.answer_re.pattern != default.pattern
    pattern = task.answer_re.pattern if custom else None
    return {
        "name": task.name,
        "kind": task.kind,
        "prompt": task.prompt_template,
        "labels": list(task.labels),
        "splits": list(task.splits),
        "description": task.description,
        "answer_regex": pattern,
        "refs": sorted({task.name, ref}),
    }


def _manifest(
    need: Need, seed: int, rows: dict[str, list[Row]], reports: list[dict], found: Entry
) -> dict[str, Any]:
    notes = list(getattr(found.source, "notes", []) or [])
    return {
        "asked": {"sizes": _wanted(need), "seed": seed, "pool_file": need.pool_file},
        "sizes": {s: len(r) for s, r in rows.items()},
        "complete": {
            s: rep["used_rows"] >= rep["source_rows"]
            for s, rep in ((r["split"], r) for r in reports)
            if rep["source_rows"]
        },
        "fingerprint": {s: _fingerprint(r) for s, r in rows.items()},
        "reports": reports,
        "notes": notes,
    }


def _fingerprint(rows: list[Row]) -> str:
    h = hashlib.sha256()
    for r in rows:
        key = [str(r["id"]), str(r["input"]), r.get("gold")]
        if "reasoning" in r:
            key.append(r["reasoning"])
        h.update(json.dumps(key, default=str).encode())
    return h.hexdigest()[:16]


def _reports(found: Entry, need: Need, rows: dict[str, list[Row]]) -> list[dict]:
    """Sample reports: a file task's against its whole splits; generated tasks have no
    source to compare with, so their counts stand alone."""
    from dataclasses import asdict

    from raysys.tasks.sampling import label_counts, sample_report

    if isinstance(found.source, Path):  # already materialised (e.g. by the pipeline)
        kept = json.loads((found.source / "manifest.json").read_text())["reports"]
        return [r for r in kept if r["split"] in rows]
    source = getattr(found.source, "all_rows", None)
    labelled = found.task.kind == "classification"
    out = []
    for split, used in rows.items():
        whole = source().get(split) if source and split in source() else None
        if whole is None or (split == POOL and need.pool_file):
            rep = sample_report(found.task.name, split, used, used, labelled)
            rep.source_rows = 0  # generated (or a pool file): no larger source to compare
        else:
            rep = sample_report(found.task.name, split, whole, used, labelled)
        if labelled:
            rep.used_labels = label_counts(r for r in used if r.get("gold") is not None)
        out.append(asdict(rep))
    return out


def _pool(found: Entry, need: Need, test: list[Row] | None, seed: int) -> list[Row]:
    """The inputs synthesis labels, disjoint from the task's test rows (by text)."""
    from raysys.tasks.rows import normalize_text, read_pool_file

    task = found.task
    test_texts = {normalize_text(r["input"]) for r in test or []}
    if need.pool_file:
        rows = read_pool_file(task, Path(need.pool_file), found.source)
    elif found.pool:
        rows = found.generate({POOL: need.pool or 0}, seed)[POOL]
    elif found.source is None and task.name in _generators():
        rows = _generated_pool(task, need)
    else:
        raise UserError(
            f"task {task.name} has no pool of unlabeled inputs to synthesise labels for; "
            "add a pool split to its source.splits, or name a file: "
            f"{{task: {need.ref}, pool: unlabeled.csv}}"
        )
    overlap = [r for r in rows if normalize_text(r["input"]) in test_texts]
    if overlap and need.pool_file:
        raise UserError(
            f"pool {need.pool_file}: {len(overlap)} input(s) also in the {task.name} test split "
            f"(first: {overlap[0]['input'][:60]!r}); remove them so no evaluation input is "
            "trained on"
        )
    rows = [r for r in rows if normalize_text(r["input"]) not in test_texts][: need.pool]
    if not rows:
        raise UserError(
            f"task {task.name}: the pool of inputs to label is empty (after removing inputs "
            "that are in its test split); give it a pool file with other inputs"
        )
    return rows


def _generators() -> set[str]:
    from raysys.tasks.gen import GENERATORS

    return set(GENERATORS)


def _generated_pool(task: Task, need: Need) -> list[Row]:
    """A built-in task's generator run with another seed: twice the pool, then the
    repeats (templated texts recur) dropped; the caller drops test inputs."""
    from raysys.tasks.gen import GENERATORS
    from raysys.tasks.rows import normalize_text

    split = "train" if "train" in task.splits else "test"
    raw = GENERATORS[task.name].generate_splits({split: 2 * (need.pool or 0)}, need.pool_seed)[
        split
    ]
    seen: set[str] = set()
    out = []
    for r in raw:
        key = normalize_text(r["input"])
        if key not in seen:
            seen.add(key)
            out.append({**r, "id": f"{task.name}-pool-{r['id']}", "split": POOL})
    return out


class _Stored:
    """Rows of a materialised task, read once; a smaller size is a prefix."""

    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.folder, self.manifest = folder, manifest
        self.cache: dict[str, list[Row]] = {}

    def rows(self, sizes: dict[str, int], seed: int) -> dict[str, list[Row]]:
        if seed != self.manifest["asked"]["seed"]:
            raise RuntimeError(
                f"{self.folder}: rows were materialised with seed "
                f"{self.manifest['asked']['seed']}, asked with seed {seed}"
            )
        out = {}
        for split, n in sizes.items():
            rows = self._read(split)
            if n > len(rows) and not self.manifest["complete"].get(split, False):
                raise UserError(
                    f"task {self.folder.name}: the run materialised {len(rows)} {split} rows, "
                    f"{n} were asked for; start a new run (run.run_id) to change sizes"
                )
            out[split] = rows[:n]
        return out

    def _read(self, split: str) -> list[Row]:
        if split not in self.cache:
            import pyarrow.parquet as pq

            path = self.folder / f"{split}.parquet"
            if not path.is_file():
                raise UserError(f"task {self.folder.name}: this run has no {split} rows")
            self.cache[split] = pq.read_table(path).to_pylist()
        return [dict(r) for r in self.cache[split]]


def _compile(pattern: str | None) -> Any:
    from raysys.tasks.base import BoundedPattern

    return BoundedPattern(pattern) if pattern else None
