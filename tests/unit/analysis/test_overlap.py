"""The report section "Overlap with evaluation splits": in every sweep and pipeline
report, with the counts, or "none found", or why there is no table."""

from __future__ import annotations

from pathlib import Path

from raysys.analysis.overlap import TITLE, overlap_section
from raysys.analysis.render import Document, to_markdown
from raysys.data import contamination as c

TEST = [
    {"id": f"test-{i}", "input": f"the committee left rates at {i} percent today"} for i in range(4)
]


def _write(run_dir: Path, train: list[dict], **settings) -> None:
    parts = [c.Part("gold", "news", train)], [c.Part("test", "news", TEST)]
    c.write(run_dir, c.check(*parts, c.Settings(**settings)))


def _md(run_dir: Path) -> str:
    doc = Document(title="t")
    overlap_section(doc, run_dir)
    return to_markdown(doc)


def test_found_overlap_is_tabled_with_counts_and_example(tmp_path):
    _write(
        tmp_path,
        [{"id": "tr-9", "input": "The committee left rates at 2 percent, today!"}],
        allow=True,
    )
    md = _md(tmp_path)
    assert f"## {TITLE}" in md
    row = next(line for line in md.splitlines() if line.startswith("| news | test |"))
    cells = [x.strip() for x in row.strip("|").split("|")]
    # task, split, rows, training rows, exact, near-duplicate, n-gram, affected, share, ...
    assert cells[:9] == ["news", "test", "4", "1", "1", "1", "0", "1", "25.0%"]
    assert cells[9] == "gold" and cells[10] == "test-2 ~ tr-9"
    assert "contamination.allow: true" in md


def test_no_overlap_says_none_found(tmp_path):
    _write(tmp_path, [{"id": "tr-1", "input": "a new plant opened in the north"}])
    md = _md(tmp_path)
    assert "| news | test | 4 | 1 | 0 | 0 | 0 | 0 | 0.0% | – | – |" in md
    assert "None found" in md


def test_a_run_without_the_check_says_so(tmp_path):
    assert "the check did not run" in _md(tmp_path)
