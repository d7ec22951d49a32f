"""Atomic writes: a reader sees the old file, or the whole new one, never half of it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_parquet(path: Path, rows: pd.DataFrame | list[dict[str, Any]]) -> None:
    import pandas as pd

    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def write_csv(path: Path, df: pd.DataFrame) -> None:
    write_text(path, df.to_csv(index=False))


def copy_tree_atomic(src: Path, dst: Path) -> None:
    """Replace the folder `dst` with a copy of `src`, copied whole under a temporary name
    first, then put in place by `replace_tree`."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    recover_tree(dst)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    replace_tree(tmp, dst)


def replace_tree(new: Path, dst: Path) -> None:
    """Put the whole folder `new` (on the same filesystem) at `dst`. Rename, then delete:
    the old copy is moved aside, the new one renamed in, then the old one removed, so a
    crash at any point leaves a whole copy at `dst` or at its aside name, which the next
    call (`recover_tree`) puts back."""
    recover_tree(dst)
    aside = _aside(dst)
    if dst.exists():
        os.replace(dst, aside)
    os.replace(new, dst)
    shutil.rmtree(aside, ignore_errors=True)


def _aside(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.old")


def recover_tree(dst: Path) -> None:
    """Finish what a `copy_tree_atomic` that died left: the old copy put back when it was
    moved aside and the new one never arrived; an aside copy removed when `dst` is whole;
    the temporary copies of writers that are gone removed."""
    aside = _aside(dst)
    if aside.exists() and not dst.exists():
        os.replace(aside, dst)
    shutil.rmtree(aside, ignore_errors=True)
    prefix = f".{dst.name}.tmp-"
    for tmp in dst.parent.iterdir():
        pid = tmp.name.removeprefix(prefix)
        if tmp.name.startswith(prefix) and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def read_parquet(path: Path, what: str = "") -> pd.DataFrame:
    """A parquet file raysys or a user wrote; one that is not parquet, or truncated, is a
    one-line `UserError` naming it (a crash mid-copy, a renamed CSV), not a traceback."""
    import pandas as pd

    from raysys.errors import UserError

    try:
        return pd.read_parquet(path)
    except (ValueError, OSError) as e:  # pyarrow's ArrowInvalid is a ValueError
        first = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise UserError(
            f"{what + ': ' if what else ''}{path} is not a readable parquet file ({first}); "
            "point it at a parquet file, or rerun the step that writes it"
        ) from None


def read_json(path: Path, what: str = "") -> Any:
    """A JSON file raysys wrote; an empty or truncated one is a one-line `UserError`."""
    from raysys.errors import UserError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(
            f"{what + ': ' if what else ''}{path} is not whole JSON ({str(e)[:80]}); it was cut "
            "short (a crash while copying it?); rerun the step that writes it (--resume)"
        ) from None
