"""Reading task files as users have them: CSV/TSV in any encoding, spreadsheets, JSON
lines, parquet, `datasets` folders, `sentence@label` files, FinBen rows and the hub.

Every reader returns records (dicts of column -> value) with a `where` label per record
(`train.csv row 17`), so a bad row is named by file and row. Parsing is pandas' and
`datasets`' own; this module only picks the reader, decodes text with the encoding the
task names (refusing with the byte, offset and line where it fails), and finds the
delimiter of a "CSV" that is really tab- or semicolon-separated.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raysys.errors import UserError

log = logging.getLogger(__name__)

FORMATS = (
    "csv",
    "tsv",
    "jsonl",
    "json",
    "parquet",
    "xlsx",
    "datasets",
    "sentence_at_label",
    "finben",
    "hub",
)
_BY_SUFFIX = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".txt": "sentence_at_label",
}
_DELIMITERS = ",\t;|"
# Reading more than this into memory for one task split is almost surely a mistake (a
# model file, a database dump): refuse it with a line instead of swapping.
MAX_FILE_BYTES = 2 * 2**30


@dataclass(frozen=True)
class Record:
    values: dict[str, Any]
    where: str  # "train.csv row 17": how an error names this record


@dataclass(frozen=True)
class ReadOptions:
    format: str | None = None  # None: from the file's suffix
    encoding: str = "utf-8"
    delimiter: str | None = None  # None: sniffed for csv, tab for tsv
    sheet: str | int = 0
    field: str = "source"  # how errors name what is read, e.g. "task fpb"


def infer_format(path: Path) -> str | None:
    """The format a file's name implies (a folder saved by `datasets` included)."""
    if path.is_dir():
        return "datasets"
    return _BY_SUFFIX.get(path.suffix.lower())


def read_table(path: Path, opts: ReadOptions) -> list[Record]:
    """Every record of one file (or `datasets` folder), with its row label."""
    fmt = opts.format or infer_format(path)
    if fmt is None:
        raise UserError(
            f"{opts.field}: cannot tell the format of {path.name} from its name; set "
            f"source.format to one of {', '.join(FORMATS[:-2])}"
        )
    if not path.exists():
        raise UserError(f"{opts.field}: file not found: {path}")
    if path.is_file() and path.stat().st_size > MAX_FILE_BYTES:
        raise UserError(
            f"{opts.field}: {path} is {path.stat().st_size / 2**30:.1f} GiB, over the "
            f"{MAX_FILE_BYTES / 2**30:.0f} GiB a task split may hold; sample it first"
        )
    reader = _READERS.get(fmt)
    if reader is None:
        raise UserError(f"{opts.field}: format {fmt!r} cannot be read from a file")
    try:
        return reader(path, opts)
    except UserError:
        raise
    except (ValueError, OSError, KeyError, IndexError) as e:  # the parsers' own complaints
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise UserError(
            f"{opts.field}: cannot read {path.name} as {fmt} ({first}); check the file or "
            "set source.format"
        ) from None


def decode(path: Path, opts: ReadOptions) -> str:
    """The file's text in the task's encoding; a byte it cannot decode is one line naming
    the byte, its line and the setting that fixes it."""
    raw = path.read_bytes()
    utf8 = opts.encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    encoding = "utf-8-sig" if utf8 else opts.encoding  # a byte-order mark is not text
    try:
        return raw.decode(encoding)
    except LookupError:
        raise UserError(
            f"{opts.field}: source.encoding: unknown encoding {opts.encoding[:40]!r}; use e.g. "
            "utf-8, latin-1 or cp1252"
        ) from None
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        name = "UTF-8" if utf8 else opts.encoding
        raise UserError(
            f"{opts.field}: {path.name} line {line}: not {name} text (byte {raw[e.start]:#04x} "
            f"at offset {e.start}); set source.encoding (e.g. latin-1 or cp1252) in the task "
            "file, or save it as UTF-8"
        ) from None


def _delimiter(text: str, path: Path, opts: ReadOptions, fmt: str) -> str:
    if opts.delimiter is not None:
        return opts.delimiter
    if fmt == "tsv":
        return "\t"
    head = "\n".join(text.splitlines()[:50])
    try:
        found = csv.Sniffer().sniff(head, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        return ","
    if found != ",":
        log.info(
            "%s: %r-separated, read with that delimiter (set source.delimiter to fix it)",
            path.name,
            found,
        )
    return found


def _read_delimited(path: Path, opts: ReadOptions, fmt: str) -> list[Record]:
    import pandas as pd

    text = decode(path, opts)
    sep = _delimiter(text, path, opts, fmt)
    frame = pd.read_csv(
        io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, skip_blank_lines=False
    )
    if len(frame.columns) == 1 and sep != "\t" and "\t" in str(frame.columns[0]):
        raise UserError(
            f"{path.name}: one column {str(frame.columns[0])[:60]!r} that holds tabs; the "
            r"file is tab-separated: set source.delimiter: '\t' (or source.format: tsv)"
        )
    # Spreadsheet numbering: the header is row 1, the first record row 2.
    return _records(frame, path, offset=2)


def _read_xlsx(path: Path, opts: ReadOptions) -> list[Record]:
    import pandas as pd

    try:
        frame = pd.read_excel(path, sheet_name=opts.sheet, dtype=str, keep_default_na=False)
    except ValueError as e:
        if "Worksheet" in str(e) or "sheet" in str(e).lower():
            raise UserError(
                f"{opts.field}: source.sheet: {path.name} has no sheet {opts.sheet!r}; name a "
                "sheet by name or by index from 0"
            ) from None
        raise
    return _records(frame, path, offset=2)


def _read_json(path: Path, opts: ReadOptions, lines: bool) -> list[Record]:
    import pandas as pd

    text = decode(path, opts)
    frame = pd.read_json(io.StringIO(text), lines=lines, dtype=False)
    return _records(frame, path, offset=1, unit="line" if lines else "record")


def _read_parquet(path: Path, opts: ReadOptions) -> list[Record]:
    import pandas as pd

    return _records(pd.read_parquet(path), path, offset=1, unit="row")


def _read_datasets(path: Path, opts: ReadOptions) -> list[Record]:
    """A single split saved with `Dataset.save_to_disk` (a DatasetDict folder is opened
    per split by the task loader)."""
    import datasets

    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        raise UserError(
            f"{opts.field}: {path} holds the splits {', '.join(ds)}; name it as source.file "
            "(its splits are used by name) or point each split at one of its subfolders"
        )
    return _records(ds.to_pandas(), path, offset=1, unit="row")


def dataset_dict_splits(path: Path) -> list[str] | None:
    """The split names of a `DatasetDict` folder (from its own index), or None."""
    index = path / "dataset_dict.json"
    if not index.is_file():
        return None
    import json

    return [str(s) for s in json.loads(index.read_text()).get("splits", [])]


def read_dataset_dict(path: Path, split: str, opts: ReadOptions) -> list[Record]:
    """One split of a `DatasetDict` folder."""
    import datasets

    ds = datasets.load_from_disk(str(path / split))
    return _records(ds.to_pandas(), path / split, offset=1, unit="row")


def _read_sentences(path: Path, opts: ReadOptions) -> list[Record]:
    """`sentence@label` per line (the Financial PhraseBank's own format)."""
    out = []
    for n, line in enumerate(decode(path, opts).splitlines(), 1):
        if not line.strip():
            continue
        text, sep, label = line.rpartition("@")
        if not sep or not text.strip():
            raise UserError(
                f"{path.name} line {n}: expected 'sentence@label', got {line[:60]!r}; fix "
                "the line or set source.format"
            )
        out.append(Record({"text": text.strip(), "label": label.strip()}, f"{path.name} line {n}"))
    return out


def _records(frame: Any, path: Path, offset: int, unit: str = "row") -> list[Record]:
    frame = frame.rename(columns=lambda c: str(c).strip())
    return [
        Record(rec, f"{path.name} {unit} {i + offset}")
        for i, rec in enumerate(frame.to_dict("records"))
    ]


_READERS = {
    "csv": lambda p, o: _read_delimited(p, o, "csv"),
    "tsv": lambda p, o: _read_delimited(p, o, "tsv"),
    "jsonl": lambda p, o: _read_json(p, o, lines=True),
    "json": lambda p, o: _read_json(p, o, lines=False),
    "finben": lambda p, o: _read_json(p, o, lines=p.suffix.lower() != ".json"),
    "parquet": _read_parquet,
    "xlsx": _read_xlsx,
    "datasets": _read_datasets,
    "sentence_at_label": _read_sentences,
}
