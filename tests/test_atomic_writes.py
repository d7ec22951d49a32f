"""Output writes are atomic: a reader (a resumed run included) sees no file or a whole one.

Two checks: every raw file write in `raysys/` either goes through `raysys.data.io`
(temporary name + `os.replace`) or says on its line why it is safe (`# atomic: ...`);
and the helpers themselves leave the old file intact when the writer dies mid-write.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pandas as pd
import pytest

from raysys.data import io

ROOT = Path(__file__).parents[1] / "raysys"
# calls that write a file in place (a reader could see part of it)
RAW_WRITES = {
    "to_csv",
    "to_parquet",
    "to_json",
    "write_text",
    "write_bytes",
    "save_file",
    "save_pretrained",
    "savefig",
    "write_table",
    "dump",
}


def _raw_writes(path: Path) -> list[tuple[int, str]]:
    src = path.read_text()
    lines = src.splitlines()
    found = []
    for node in ast.walk(ast.parse(src)):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Attribute):  # path.write_text(...), df.to_parquet(path)
            name, target = f.attr, f.value if f.attr.startswith("write_") else None
        else:  # save_file(obj, path), open(path, "w"); write_text(...) is raysys.data.io's
            name, target = getattr(f, "id", ""), None
            if name not in ("open", "save_file"):
                continue
        if target is None and node.args:
            target = node.args[1] if name == "save_file" and len(node.args) > 1 else node.args[0]
        writes = name in RAW_WRITES and (node.args or node.keywords)
        if name == "open" and len(node.args) > 1:
            mode = node.args[1]
            writes = isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax")
        if name in ("to_csv", "to_json") and not node.args:
            writes = False  # returns a string
        if name == "savefig" and node.args and isinstance(node.args[0], ast.Name):
            writes = node.args[0].id not in ("buf",)  # into memory
        if not writes:
            continue
        if target is not None and "tmp" in (ast.get_source_segment(src, target) or ""):
            continue  # written under a temporary name, renamed into place when whole
        span = lines[node.lineno - 1 : (node.end_lineno or node.lineno)]
        above = lines[node.lineno - 2] if node.lineno > 1 else ""
        if not any("# atomic:" in s for s in [*span, above]):
            found.append((node.lineno, lines[node.lineno - 1].strip()))
    return sorted(found)


def test_every_raw_write_is_atomic_or_says_why():
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        if path == ROOT / "data" / "io.py":
            continue  # the atomic helpers
        offenders += [f"{path.relative_to(ROOT.parent)}:{n}: {s}" for n, s in _raw_writes(path)]
    assert not offenders, (
        "write through raysys.data.io, or justify with '# atomic:':\n" + "\n".join(offenders)
    )


def test_the_audit_catches_a_raw_write(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f(df, p, tmp):\n    df.to_parquet(p)\n    p.write_text('x')  # atomic: a probe\n"
        "    s = df.to_csv(index=False)\n    open(p, 'w').write(s)\n"
        "    (tmp / 'a.json').write_text(s)\n    save_file({}, str(p / 'w.st'))\n"
    )
    assert [n for n, _ in _raw_writes(bad)] == [2, 5, 7]


@pytest.mark.parametrize(
    "write, name, new",
    [
        (io.write_parquet, "t.parquet", pd.DataFrame({"a": [9]})),
        (io.write_csv, "t.csv", pd.DataFrame({"a": [9]})),
        (io.write_json, "t.json", {"a": 9}),
        (io.write_text, "t.md", "new"),
    ],
)
def test_a_writer_dying_mid_write_leaves_the_old_file(tmp_path, monkeypatch, write, name, new):
    target = tmp_path / name
    io.write_text(target, "old")
    real_replace = os.replace

    def die(src, dst):  # the temporary file is complete; the process dies before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", die)
    with pytest.raises(KeyboardInterrupt):
        write(target, new)
    monkeypatch.setattr(os, "replace", real_replace)
    assert target.read_text() == "old"
    # what a reader (or a resumed run) globs for is the real name only
    assert [p.name for p in tmp_path.glob("*" + target.suffix)] == [name]


def test_copy_tree_atomic_replaces_a_whole_folder(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "adapter_model.safetensors").write_bytes(b"new")
    dst.mkdir()
    (dst / "adapter_model.safetensors").write_bytes(b"old")
    (dst / "stale.json").write_text("{}")
    io.copy_tree_atomic(src, dst)
    assert sorted(p.name for p in dst.iterdir()) == ["adapter_model.safetensors"]
    assert (dst / "adapter_model.safetensors").read_bytes() == b"new"
    assert not list(tmp_path.glob(".dst*"))


def test_no_stage_lets_ray_data_drop_rows_silently():
    """Ray Data drops up to `max_errored_blocks` failed blocks without failing the job;
    raysys never raises it from 0 (a failed block fails the pass, or its actor is
    restarted and the block retried), and the engines audit rows in = rows out."""
    import ray.data

    assert ray.data.DataContext.get_current().max_errored_blocks == 0
    for path in ROOT.rglob("*.py"):
        src = path.read_text()
        assert "max_errored_blocks" not in src, path
        assert "ignore_missing_paths=True" not in src, path
    for engine in ("hf.py", "vllm.py"):
        assert "audit_rows(" in (ROOT / "engines" / engine).read_text(), engine
