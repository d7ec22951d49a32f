"""Contamination check: training rows against every evaluation split of a run.

Before a run trains, every row it may train on (gold train rows, the pools synthesis
labels, the general/math regularisers) is compared with every evaluation split (the
validation and test rows of every task the run evaluates). Only the task *input* is
compared, never the templated prompt: every prompt of a task shares its instruction
text, which says nothing about leakage.

Text is normalised first (`normalize`): Unicode NFKC, casefolded, punctuation turned
into spaces, whitespace collapsed; tokens are its words. An evaluation row counts as

* **exact** when its normalised input equals a training row's;
* **near-duplicate** when the Jaccard similarity of its word 5-gram shingles with a
  training row's is at least `near_duplicate` (0.8): found with datasketch's MinHash LSH
  (128 permutations) and then confirmed on the exact shingle sets, so no pair is reported
  on the sketch alone;
* **n-gram** when one training row shares `ngram`-word sequences with it (13, as the
  evaluation harnesses' decontamination uses) that cover at least `ngram_coverage` of
  its words (0.8, Llama 2's "dirty" rule; 0: any shared n-gram) — so an evaluation input
  inside a longer training text counts, a shared phrase does not. *Template* n-grams do
  not count: those in more than `common_rows` rows of the evaluation split or of the
  training source (an instruction, a table header), which GPT-3's decontamination also
  set aside as common phrases.

A row is *affected* when any of the three holds; `share` is affected / rows of the
split. The run is refused when a share exceeds `max_share` (default 0: any overlap)
unless `allow` is set; the table is written either way.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from raysys.errors import UserError

Row = dict[str, Any]

FILE = "contamination.json"
SHINGLE = 5  # words per MinHash shingle
PERMUTATIONS = 128
SOURCES = ("gold", "synthetic", "general", "math")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Settings:
    """The `contamination` config section, as the check reads it."""

    max_share: float = 0.0
    allow: bool = False
    ngram: int = 13
    near_duplicate: float = 0.8
    ngram_coverage: float = 0.8
    common_rows: int = 10

    @classmethod
    def of(cls, section: Any) -> Settings:
        return cls(**{k: getattr(section, k) for k in cls.__dataclass_fields__})


@dataclass
class Part:
    """Rows of one side: a training source of a task, or an evaluation split of a task."""

    kind: str  # training: gold/synthetic/general/math; evaluation: validation/test
    task: str
    rows: list[Row]  # {id, input}


@dataclass
class Overlap:
    """One (training source, evaluation split) pair with what was found."""

    source: str
    train_task: str
    train_rows: int
    eval_task: str
    split: str
    eval_rows: int
    exact: int = 0
    near_duplicate: int = 0
    ngram: int = 0
    affected: int = 0
    share: float = 0.0
    example_id: str | None = None
    example_input: str | None = None
    example_train_id: str | None = None


@dataclass
class Result:
    settings: dict[str, Any]
    fingerprint: str
    table: list[Overlap] = field(default_factory=list)  # per (training, evaluation) part
    splits: list[Overlap] = field(default_factory=list)  # per evaluation part, all training

    def found(self) -> list[Overlap]:
        return [o for o in self.splits if o.affected]

    def to_json(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "fingerprint": self.fingerprint,
            "splits": [asdict(o) for o in self.splits],
            "table": [asdict(o) for o in self.table],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Result:
        return cls(
            data["settings"],
            data["fingerprint"],
            [Overlap(**o) for o in data["table"]],
            [Overlap(**o) for o in data["splits"]],
        )


# ----------------------------------------------------------------------- text


def normalize(text: Any) -> str:
    """NFKC, casefolded, punctuation as spaces, whitespace collapsed."""
    return " ".join(tokens(text))


def tokens(text: Any) -> list[str]:
    return _WORD.findall(unicodedata.normalize("NFKC", str(text)).casefold().replace("_", " "))


def ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def shingles(words: list[str]) -> set[str]:
    """Word 5-grams; a text shorter than that is one shingle (exact match covers it)."""
    if len(words) < SHINGLE:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


# -------------------------------------------------------------------- the check


def check(train: list[Part], evals: list[Part], settings: Settings) -> Result:
    """The overlap tables: one entry per (training part, evaluation part), and one per
    evaluation part over every training part together (`splits`)."""
    result = Result(asdict(settings), fingerprint(train, evals, settings))
    sides = [_Eval(e, settings) for e in evals]
    found: list[dict[int, dict[str, str]]] = [{} for _ in evals]
    for t in train:
        index = _Index(t, settings)
        for side, union in zip(sides, found, strict=True):
            pair, hits = index.compare(side)
            result.table.append(pair)
            for i, h in hits.items():
                union.setdefault(i, {}).update({k: f"{t.kind}|{t.task}|{v}" for k, v in h.items()})
    n_train = sum(len(t.rows) for t in train)
    for side, union in zip(sides, found, strict=True):
        e = side.part
        total = _tally(Overlap("", "", n_train, e.task, e.kind, len(e.rows)), e, union)
        who = [v.split("|", 2) for h in union.values() for v in h.values()]
        total.source = "+".join(sorted({w[0] for w in who}))
        total.train_task = "+".join(sorted({w[1] for w in who}))
        if total.example_train_id:
            total.example_train_id = total.example_train_id.split("|", 2)[2]
        result.splits.append(total)
    return result


class _Eval:
    """One evaluation part, tokenised and sketched once for every training part."""

    def __init__(self, part: Part, settings: Settings) -> None:
        self.part = part
        self.words = [tokens(r["input"]) for r in part.rows]
        self.shingles = [shingles(w) for w in self.words]
        self.sketches = [_minhash(sh) if sh else None for sh in self.shingles]
        rows = Counter(g for w in self.words for g in ngrams(w, settings.ngram))
        self.common = {g for g, c in rows.items() if c > settings.common_rows}


class _Index:
    """One training part, indexed three ways: normalised text, n-grams, MinHash LSH."""

    def __init__(self, part: Part, settings: Settings) -> None:
        from datasketch import MinHashLSH

        self.part, self.settings = part, settings
        words = [tokens(r["input"]) for r in part.rows]
        ids = [str(r["id"]) for r in part.rows]
        self.exact = {" ".join(w): i for w, i in zip(words, ids, strict=True) if w}
        self.grams: dict[tuple[str, ...], list[int]] = {}  # n-gram -> rows (positions)
        for k, w in enumerate(words):
            for g in ngrams(w, settings.ngram):
                self.grams.setdefault(g, []).append(k)
        self.common = {g for g, rows in self.grams.items() if len(rows) > settings.common_rows}
        self.ids, self.shingles = ids, [shingles(w) for w in words]
        self.lsh = MinHashLSH(threshold=settings.near_duplicate, num_perm=PERMUTATIONS)
        with self.lsh.insertion_session() as session:
            for k, sh in enumerate(self.shingles):
                if sh:
                    session.insert(str(k), _minhash(sh))

    def compare(self, side: _Eval) -> tuple[Overlap, dict[int, dict[str, str]]]:
        """This training part against one evaluation part: the pair's counts, and per
        affected evaluation row (by position) the kind of overlap -> a training id."""
        t, e = self.part, side.part
        template = self.common | side.common
        hits = {}
        for i, (w, sh, sk) in enumerate(zip(side.words, side.shingles, side.sketches, strict=True)):
            h = {}
            if w and (found := self.exact.get(" ".join(w))):
                h["exact"] = found
            if sk is not None and (found := self._near(sh, sk)):
                h["near_duplicate"] = found
            if found := self._shared(w, template):
                h["ngram"] = found
            if h:
                hits[i] = h
        pair = Overlap(t.kind, t.task, len(t.rows), e.task, e.kind, len(e.rows))
        return _tally(pair, e, hits), hits

    def _shared(self, words: list[str], template: set[tuple[str, ...]]) -> str | None:
        """The training row whose shared (non-template) n-grams cover the most of this
        row's words, when that is at least `ngram_coverage` of them (0: any shared
        n-gram). One training row must cover it: pieces of several rows that each share a
        template with it are no copy of it."""
        n = self.settings.ngram
        covered: dict[int, set[int]] = {}
        for i in range(len(words) - n + 1):
            g = tuple(words[i : i + n])
            if g in template:
                continue
            for k in self.grams.get(g, ()):
                covered.setdefault(k, set()).update(range(i, i + n))
        if not covered:
            return None
        best = min(covered, key=lambda k: (-len(covered[k]), k))
        if len(covered[best]) < self.settings.ngram_coverage * len(words):
            return None
        return self.ids[best]

    def _near(self, sh: set[str], sketch: Any) -> str | None:
        # the sketch proposes, the exact shingle sets decide
        for key in sorted(self.lsh.query(sketch), key=int):
            if jaccard(sh, self.shingles[int(key)]) >= self.settings.near_duplicate:
                return self.ids[int(key)]
        return None


def _tally(out: Overlap, e: Part, hits: dict[int, dict[str, str]]) -> Overlap:
    for i in sorted(hits):
        for kind in hits[i]:
            setattr(out, kind, getattr(out, kind) + 1)
    out.affected = len(hits)
    out.share = out.affected / len(e.rows) if e.rows else 0.0
    if hits:
        first = min(hits)
        row = e.rows[first]
        out.example_id = str(row["id"])
        out.example_train_id = next(iter(hits[first].values()))
        out.example_input = " ".join(str(row["input"]).split())[:120]
    return out


def _minhash(sh: set[str]) -> Any:
    from datasketch import MinHash

    m = MinHash(num_perm=PERMUTATIONS, seed=1)
    m.update_batch([s.encode() for s in sorted(sh)])
    return m


# ------------------------------------------------------------- refuse, persist


def refuse_if_contaminated(result: Result, settings: Settings) -> None:
    """UserError (one line) for the worst pair above `max_share`, unless `allow`."""
    over = [o for o in result.found() if o.share > settings.max_share]
    if not over or settings.allow:
        return
    o = max(over, key=lambda o: (o.share, o.affected))
    where = f"{o.source.replace('+', ', ')} rows of {o.train_task.replace('+', ', ')}"
    raise UserError(
        f"contamination: {o.affected} of {o.eval_rows} {o.split} rows of task {o.eval_task} "
        f"appear in the training rows ({where}), e.g. id "
        f"{o.example_id} (training row {o.example_train_id}): {o.example_input!r}; remove "
        "them, or set contamination.allow: true (contamination.max_share: the share "
        "tolerated)"
    )


def fingerprint(train: list[Part], evals: list[Part], settings: Settings) -> str:
    """sha256 over the settings and every compared (kind, task, id, input)."""
    h = hashlib.sha256(json.dumps(asdict(settings), sort_keys=True).encode())
    for p in [*train, *evals]:
        for r in p.rows:
            h.update(json.dumps([p.kind, p.task, str(r["id"]), str(r["input"])]).encode())
    return h.hexdigest()[:16]


def run_check(train: list[Part], evals: list[Part], settings: Settings) -> Result:
    """`check`, refused per `settings`; nothing is written."""
    result = check(train, evals, settings)
    refuse_if_contaminated(result, settings)
    return result


def cached(out_dir: Path, train: list[Part], evals: list[Part], settings: Settings) -> Result:
    """The result stored in `out_dir` when it was computed from these inputs, else
    `run_check`; a resumed run recomputes nothing when its rows have not changed."""
    path = Path(out_dir) / FILE
    if path.is_file():
        data = json.loads(path.read_text())
        if data.get("fingerprint") == fingerprint(train, evals, settings):
            result = Result.from_json(data)
            refuse_if_contaminated(result, settings)
            return result
    return run_check(train, evals, settings)


def write(out_dir: Path, result: Result) -> Path:
    """`contamination.json` in `out_dir`, atomically."""
    from raysys.io import write_json

    path = Path(out_dir) / FILE
    write_json(path, result.to_json())
    return path


def read(out_dir: Path) -> Result | None:
    """The stored result, or None where the run has none."""
    path = Path(out_dir) / FILE
    if not path.is_file():
        return None
    return Result.from_json(json.loads(path.read_text()))


# ------------------------------------------------------- parts from a run's rows


def source_of(task: str, split: str) -> str | None:
    """Which training source a task's split feeds: its train split is gold (or a
    regulariser), its pool the synthetic rows; held-out splits feed none."""
    from raysys.data.spec import GENERAL_TASK, MATH_TASK

    if split == "pool":
        return "synthetic"
    if split != "train":
        return None
    return {GENERAL_TASK: "general", MATH_TASK: "math"}.get(task, "gold")


def parts(
    rows: dict[str, dict[str, list[Row]]], eval_tasks: Iterable[str]
) -> tuple[list[Part], list[Part]]:
    """Training and evaluation parts from a run's rows (task -> split -> rows)."""
    wanted = set(eval_tasks)
    train, evals = [], []
    for task in sorted(rows):
        for split in sorted(rows[task]):
            if (src := source_of(task, split)) is not None:
                train.append(Part(src, task, rows[task][split]))
            elif task in wanted and split in ("validation", "test"):
                evals.append(Part(split, task, rows[task][split]))
    return train, evals
