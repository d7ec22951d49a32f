"""Hostile files and values (issue #20): alias bombs, deep nesting, megabyte values,
backtracking regexes, colliding trial ids, infinities, huge seeds, prompt fields, files
that are not what their name says, cut-short run outputs.

Each runs the real CLI in a subprocess from a scratch folder, under a time and a memory
limit, and asserts: the exit code, exactly one `raysys: error:` line under 300 characters
naming the field and the fix, and that nothing was written in the scratch folder.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.fixtures import REPO, error_lines

SECONDS, MEMORY = 60, 4 << 30

# The classic "billion laughs": 464 bytes that expand to 10**9 list items.
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8)
)


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _refused(scratch: Path, *args: str, code: int = 2) -> str:
    """The command fails with `code` and one short error line; nothing is written."""
    before = _files(scratch)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["HOME"] = str(scratch)  # the model cache stays the session's (RAYSYS_CACHE)
    r = subprocess.run(
        [sys.executable, "-m", "raysys.cli", *args],
        cwd=scratch,
        env=env,
        capture_output=True,
        text=True,
        timeout=SECONDS,
        preexec_fn=_limits,
    )
    err = error_lines(r.stderr)
    assert r.returncode == code, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert len(err) == 1 and err[0].startswith("raysys: error: "), err
    assert len(err[0]) < 300, err[0]
    assert _files(scratch) == before, sorted(set(_files(scratch)) - set(before))
    return err[0]


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    d = tmp_path / "scratch"
    d.mkdir()
    return d


def _task(scratch: Path, name: str = "t", **change) -> Path:
    (scratch / "rows.csv").write_text("text,label\nUp,positive\nDown,negative\n")
    spec = {
        "name": name,
        "kind": "classification",
        "labels": ["positive", "negative"],
        "prompt": "Tone?\n{input}\nEnd with 'Answer: <tone>'.",
        "source": {"splits": {"test": "rows.csv"}},
        **change,
    }
    path = scratch / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


# ------------------------------------------------------------------------ YAML


def test_an_alias_bomb_config_is_refused_at_once(scratch):
    (scratch / "bomb.yaml").write_text(BOMB)
    assert len(BOMB) < 600
    line = _refused(scratch, "sweep", "bomb.yaml", "--dry-run")
    assert "bomb.yaml line 1: YAML anchors (&a) are not accepted" in line


def test_an_alias_bomb_in_a_task_or_cocktail_file_is_refused(scratch):
    (scratch / "bomb_task.yaml").write_text(BOMB)
    line = _refused(scratch, "eval", "eval.tasks=[bomb_task.yaml]", "model.source=tiny-random")
    assert "bomb_task.yaml" in line and "not accepted" in line
    (scratch / "bomb_mix.yaml").write_text(BOMB)
    line = _refused(scratch, "data", "mix", "bomb_mix.yaml")
    assert "bomb_mix.yaml line 1" in line and "not accepted" in line
    (scratch / "sweep.yaml").write_text("sweep:\n  cocktails: [bomb_mix.yaml]\n")
    line = _refused(scratch, "sweep", "sweep.yaml", "--dry-run")
    assert "bomb_mix.yaml" in line and "not accepted" in line


def test_aliases_in_an_override_and_deep_nesting_are_refused(scratch):
    line = _refused(scratch, "sweep", "--dry-run", "sweep.tasks=[&a x, *a]")
    assert "override sweep.tasks: YAML anchors" in line
    deep = "[" * 20000 + "]" * 20000
    (scratch / "deep.yaml").write_text(f"sweep:\n  tasks: {deep}\n")
    line = _refused(scratch, "sweep", "deep.yaml", "--dry-run")
    assert "nested more than 64 levels deep" in line


def test_a_megabyte_value_is_quoted_in_200_characters(scratch):
    (scratch / "big.yaml").write_text(f"train:\n  learning_rate: '{'9' * 900_000}x'\n")
    line = _refused(scratch, "train", "big.yaml", "data.path=x.parquet")
    assert "train.learning_rate" in line and "…" in line
    (scratch / "huge.yaml").write_text("a: " + "b" * (2 << 20) + "\n")
    line = _refused(scratch, "train", "huge.yaml")
    assert "a YAML config is at most 1 MiB" in line


# ------------------------------------------------------------------------ values


@pytest.mark.parametrize(
    "override, field",
    [
        ("train.learning_rate=.inf", "train.learning_rate"),
        ("train.weight_decay=.nan", "train.weight_decay"),
        ("train.epochs=1e300", "train.epochs"),
        ("run.seed=100000000000000000000000", "run.seed"),
    ],
)
def test_infinite_and_huge_numbers_are_refused_before_ray_starts(scratch, override, field):
    line = _refused(scratch, "train", str(REPO / "configs/train_sft.yaml"), override)
    assert f"{field}: " in line


@pytest.mark.parametrize(
    "prompt, expect",
    [
        ("Label {label} for {input}", "unknown field {label}"),
        ("{input:>99999999999}", "{input} takes no format spec"),
        ("{input!r}", "{input} takes no format spec"),
        ("Use {curly} braces", "unknown field {curly}"),
    ],
)
def test_prompt_fields_are_checked_when_the_task_loads(scratch, prompt, expect):
    _task(scratch, prompt=prompt)
    line = _refused(scratch, "tasks", "show", "t.yaml")
    assert "prompt: " in line and expect in line


@pytest.mark.parametrize(
    "pattern, expect",
    [
        (r"Answer:((?:.*a){12}b)", "nested repeat"),  # a bounded outer repeat
        (r"Answer:(.*.*.*.*.*b)", "takes over 0.2 s"),  # adjacent repeats
        (r"(a+)+$", "nested repeat"),
    ],
)
def test_backtracking_answer_regexes_are_refused_in_bounded_time(scratch, pattern, expect):
    _task(scratch, answer_regex=pattern)
    line = _refused(scratch, "tasks", "show", "t.yaml")
    assert "answer_regex" in line and expect in line


def test_a_slow_regex_is_stopped_by_its_time_bound_on_a_real_output():
    """Even a pattern the load-time checks let through cannot hang the driver."""
    from raysys.errors import UserError
    from raysys.tasks.base import BoundedPattern

    slow = BoundedPattern(r"Answer:(\w*\w*\w*\w*\w*\w*!)", timeout=0.2)
    with pytest.raises(UserError, match="took over 0.2 s on one output"):
        slow.findall("Answer:" + "a" * 4000)


def test_trial_ids_that_collide_are_refused_naming_both(scratch):
    tiny = str(REPO / "configs/sweep_tiny.yaml")
    line = _refused(scratch, "sweep", tiny, "sweep.fractions=[0.3333331,0.3333332]", "--dry-run")
    assert "would share the id" in line and "0.3333331 vs 0.3333332" in line
    mixes = (
        "sweep.cocktails=[{name: mix.v1, components: [{task: news_sentiment}]}, "
        "{name: 'mix v1', components: [{task: price_direction}]}]"
    )
    line = _refused(scratch, "sweep", tiny, mixes, "--dry-run")
    assert "'mix.v1' vs 'mix v1'" in line


# ------------------------------------------------------------------------ files


def test_data_path_that_is_not_parquet_is_one_line(scratch):
    (scratch / "rows.parquet").write_text("text,label\nUp,positive\n")  # a CSV by another name
    line = _refused(
        scratch,
        "train",
        str(REPO / "configs/train_sft.yaml"),
        "data.path=rows.parquet",
        "data.cocktail=null",
        "model.source=tiny-random",
        "run.storage_path=/nonexistent-never-written",
    )
    assert "data.path:" in line and "is not a readable parquet file" in line


@pytest.mark.parametrize(
    "name, data, expect",
    [
        ("pool.csv", "input\nCaf\xe9 rates\n".encode("latin-1"), "not UTF-8 text (byte 0xe9"),
        ("pool.parquet", b"PAR1\x00\x00 truncated", "cannot read pool.parquet as parquet"),
        ("pool.jsonl", b'{"input": "Rates up", "id": 7}\n{"input": ', "cannot read pool.jsonl"),
    ],
)
def test_synth_inputs_that_cannot_be_read_are_one_line(scratch, name, data, expect):
    (scratch / name).write_bytes(data)
    line = _refused(
        scratch,
        "synth",
        str(REPO / "configs/synth.yaml"),
        f"synth.inputs={name}",
        "model.source=tiny-random",
        "run.storage_path=out",
    )
    assert expect in line


def test_synth_inputs_keep_ids_as_text(tmp_path):
    from raysys.tasks import get_task
    from raysys.tasks.rows import read_pool_file

    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"id": "007", "input": "Rates up"}\n{"id": "1e3", "input": "Rates down"}\n')
    rows = read_pool_file(get_task("fomc_stance"), pool)
    assert [r["id"] for r in rows] == ["fomc_stance-pool-007", "fomc_stance-pool-1e3"]


@pytest.mark.parametrize("content", ["", '{"models": [', "[1, 2]"])
def test_a_cut_short_pipeline_summary_is_one_line(scratch, content):
    run = scratch / "run"
    run.mkdir()
    (run / "pipeline.json").write_text(content)
    line = _refused(scratch, "report", "run")
    assert "pipeline.json" in line and ("not whole JSON" in line or "not a pipeline" in line)


def test_a_garbage_results_parquet_is_one_line(scratch):
    run = scratch / "sweep"
    run.mkdir()
    pd.DataFrame({"x": [1]}).to_parquet(run / "ok.parquet")
    (run / "results.parquet").write_bytes((run / "ok.parquet").read_bytes()[:20])
    line = _refused(scratch, "report", "sweep")
    assert "results.parquet is not a readable parquet file" in line
