"""Output writes are atomic: a reader (a resumed run included) sees no file or a whole one.

Two checks: every raw file write in `raysys/` either goes through `raysys.io`
(temporary name + `os.replace`) or says on its line why it is safe (`# atomic: ...`);
and the helpers themselves leave the old file intact when the writer dies mid-write.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pandas as pd
import pytest

from raysys import io
from tests.fixtures import REPO

ROOT = REPO / "raysys"
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
    # pyarrow filesystems (object stores, Ray Train storage): a local file opened this
    # way is visible, half written, until the stream closes
    "open_output_stream",
    "open_append_stream",
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
        else:  # save_file(obj, path), open(path, "w"); write_text(...) is raysys.io's
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
        if path == ROOT / "io.py":
            continue  # the atomic helpers
        offenders += [f"{path.relative_to(ROOT.parent)}:{n}: {s}" for n, s in _raw_writes(path)]
    assert not offenders, "write through raysys.io, or justify with '# atomic:':\n" + "\n".join(
        offenders
    )


def test_the_audit_catches_a_raw_write(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f(df, p, tmp):\n    df.to_parquet(p)\n    p.write_text('x')  # atomic: a probe\n"
        "    s = df.to_csv(index=False)\n    open(p, 'w').write(s)\n"
        "    (tmp / 'a.json').write_text(s)\n    save_file({}, str(p / 'w.st'))\n"
        "    with fs.open_output_stream(f'{p}/r.json') as f:\n        f.write(s)\n"
        "    with fs.open_output_stream(f'{p}/.r.tmp') as f:\n        f.write(s)\n"
        "    # atomic: an object store shows whole uploads only\n"
        "    fs.open_output_stream(p)\n"
    )
    assert [n for n, _ in _raw_writes(bad)] == [2, 5, 7, 8]


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


# --------------------------------------------------------------------------- copy_tree_atomic


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def _old_and_new(tmp_path: Path) -> tuple[Path, Path, dict, dict]:
    src, dst = tmp_path / "src", tmp_path / "adapter"
    src.mkdir()
    (src / "adapter_model.safetensors").write_bytes(b"new" * 1000)
    (src / "adapter_config.json").write_text('{"r": 8}')
    dst.mkdir()
    (dst / "adapter_model.safetensors").write_bytes(b"old")
    (dst / "stale.json").write_text("{}")
    return src, dst, _tree(src), _tree(dst)


class Crash(BaseException):
    """The process dies here (BaseException: no `except Exception` may swallow it)."""


@pytest.mark.parametrize("at", ["copy", "move_aside", "rename_in", "delete_old"])
def test_copy_tree_atomic_survives_a_crash_at_every_step(tmp_path, monkeypatch, at):
    """Rename, then delete: wherever the writer dies, a whole copy (old or new) is at
    `dst` or its aside name, and the next call puts things right."""
    src, dst, new, old = _old_and_new(tmp_path)
    real_replace, real_rmtree, real_copytree = os.replace, io.shutil.rmtree, io.shutil.copytree
    replaces = []

    def replace(a, b):
        replaces.append(b)
        if (at, len(replaces)) in (("move_aside", 1), ("rename_in", 2)):
            raise Crash
        real_replace(a, b)

    def copytree(a, b, **kw):
        real_copytree(a, b, **kw)
        (Path(b) / "adapter_model.safetensors").write_bytes(b"ne")  # half copied
        raise Crash

    def rmtree(p, *a, **kw):
        if Path(p).name == ".adapter.old":
            if at == "delete_old" and Path(p).exists():
                (Path(p) / "stale.json").unlink()  # half deleted
                raise Crash
        real_rmtree(p, *a, **kw)

    monkeypatch.setattr(io.os, "replace", replace)
    monkeypatch.setattr(io.shutil, "rmtree", rmtree)
    if at == "copy":
        monkeypatch.setattr(io.shutil, "copytree", copytree)
    with pytest.raises(Crash):
        io.copy_tree_atomic(src, dst)
    monkeypatch.undo()
    aside = tmp_path / ".adapter.old"
    whole = [p for p in (dst, aside) if p.is_dir() and _tree(p) in (old, new)]
    assert whole, (at, sorted(p.name for p in tmp_path.iterdir()))
    io.recover_tree(dst)  # what the next call does first
    assert _tree(dst) in (old, new) and not aside.exists()
    io.copy_tree_atomic(src, dst)
    assert _tree(dst) == new
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) in (
        [],
        [f".adapter.tmp-{os.getpid()}"],  # the crashed copy of this (live) process
    )


def test_recover_tree_removes_the_temp_copies_of_dead_writers(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = tmp_path / f".adapter.tmp-{dead.stdout.strip()}"
    stale.mkdir()
    (stale / "adapter_model.safetensors").write_bytes(b"ne")
    io.copy_tree_atomic(tmp_path, tmp_path.parent / "elsewhere")  # another folder: untouched
    assert stale.exists()
    src = tmp_path.parent / "src-recover"
    src.mkdir(exist_ok=True)
    (src / "a").write_text("a")
    io.copy_tree_atomic(src, tmp_path / "adapter")
    assert not stale.exists() and _tree(tmp_path / "adapter") == {"a": b"a"}


# --------------------------------------------------------------------------- Ray Train reports


def _report(storage: Path, step: int) -> None:
    from raysys.train.launch import ReportRecorder

    metrics = [{"step": step, "loss": 1.0 / step, "history": [{"step": step, "loss": 1.0}]}]
    ReportRecorder(str(storage), "train").after_report(None, metrics, None)


def test_reports_are_written_whole_and_a_torn_one_is_skipped(tmp_path, caplog):
    """A report JSON torn by a crash (older raysys wrote it in place) must not break
    reading the others, nor the failure explanation that reads them."""
    from raysys.train.launch import REPORTS, _explain, read_reports

    _report(tmp_path, 1)
    folder = tmp_path / "train" / REPORTS
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []  # no temp left
    (folder / "99999999999999999998-000002.json").write_bytes(b'{"time": 1, "step": 2, "hist')
    (folder / "99999999999999999999-000003.json").write_bytes(b"\xff\xfe")
    _report(tmp_path, 4)
    with caplog.at_level("WARNING"):
        reports = read_reports(str(tmp_path), "train")
    assert [r["step"] for r in reports] == [1, 4]
    assert sum("not a whole report" in r.message for r in caplog.records) == 2
    err = _explain(RuntimeError("worker died"), str(tmp_path), "train")
    assert "\n" not in str(err) and len(str(err)) < 300


def test_a_report_writer_dying_before_the_rename_leaves_no_report(tmp_path, monkeypatch):
    import raysys.train.reports as reports

    real_fs = reports.filesystem_of

    class DiesBeforeTheRename:  # the real local filesystem; the process dies at `move`
        def __init__(self, fs):
            self.fs = fs

        def __getattr__(self, name):
            return getattr(self.fs, name)

        def move(self, src, dst):
            raise Crash

    monkeypatch.setattr(
        reports, "filesystem_of", lambda s: (DiesBeforeTheRename(real_fs(s)[0]), real_fs(s)[1])
    )
    with pytest.raises(Crash):
        _report(tmp_path, 1)
    monkeypatch.undo()
    assert reports.read_reports(str(tmp_path), "train") == []
    assert not list((tmp_path / "train" / reports.REPORTS).glob("*.json"))
