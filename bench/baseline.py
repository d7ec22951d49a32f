"""Run a bench function in another git ref's tree, to compare it with this tree side by side.

`tree(ref)` checks the ref out once into a temporary worktree; `run_child(tree, module,
func, *args)` runs `bench/<module>.py`'s `func(out_json, *args)` in a fresh process whose
`raysys` is that tree's (PYTHONPATH), and returns what it wrote. The bench code itself
always comes from this tree, so both arms measure the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tree(ref: str) -> Path:
    sha = subprocess.check_output(["git", "-C", str(ROOT), "rev-parse", ref], text=True).strip()
    path = Path(tempfile.gettempdir()) / f"raysys-bench-{sha[:10]}"
    if not path.exists():
        subprocess.check_call(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), sha],
            stdout=subprocess.DEVNULL,
        )
    return path


def run_child(where: Path, module: str, func: str, *args: object) -> object:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import raysys; "
        "assert raysys.__file__.startswith(sys.argv[2]), raysys.__file__; "
        f"from {module} import {func}; {func}(*sys.argv[3:])"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "bench"), str(where), out, *map(str, args)],
        env={**os.environ, "PYTHONPATH": str(where)},
        cwd=where,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return json.loads(Path(out).read_text())


def record(bench: str, args: object, load: float, **fields: object) -> Path:
    """The bench's JSON under bench/results/<bench>.json: date, arguments, machine, the load
    when it started, and its own fields."""
    import datetime as dt
    import platform

    result = {
        "bench": bench,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
        "args": vars(args),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "load_at_start": load,
        **fields,
    }
    path = ROOT / "bench" / "results" / f"{bench}.json"
    path.write_text(json.dumps(result, indent=2))
    return path
