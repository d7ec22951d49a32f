"""Users' own data end to end: a sweep whose config, task YAML and data sit in three
folders and that is started from a fourth, over a label-sorted, imbalanced, latin-1,
tab-separated file named .csv; a pipeline whose synthesised task takes a pool file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.fixtures import LABELS, REPO, error_lines, quirky_rows


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "raysys.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


def _write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def _sorted_fpb(tmp_path: Path) -> Path:
    """A label-sorted 60/25/15 file, latin-1, tab-separated but named .csv."""
    data = tmp_path / "data" / "fpb_sorted.csv"
    data.parent.mkdir(parents=True)
    data.write_bytes(quirky_rows(300).to_csv(sep="\t", index=False).encode("latin-1"))
    return data


def _task(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "tasks" / "fpb.yaml",
        {
            "name": "fpb_sorted",
            "kind": "classification",
            "labels": LABELS,
            "prompt": "Tone?\n{input}\nEnd with 'Answer: <tone>'.",
            "source": {
                "file": "../data/fpb_sorted.csv",  # relative to this task file
                "encoding": "latin-1",
                "split_fractions": {"validation": 0.1, "test": 0.2},
            },
            "columns": {"input": "sentence", "gold": "tone", "id": "uid"},
        },
    )


def test_a_sweep_with_relative_paths_runs_from_any_folder(ray_local, tmp_path):
    _sorted_fpb(tmp_path)
    _task(tmp_path)
    tiny = yaml.safe_load((REPO / "configs" / "sweep_tiny.yaml").read_text())
    tiny["run"] = {"name": "own", "storage_path": "runs", "run_id": "s1"}  # cwd-relative
    tiny["sweep"].update(
        tasks=["../tasks/fpb.yaml"],  # relative to this config file
        fractions=[1.0],
        train_size=48,
        validation_size=12,
        test_size=40,
        validate_in="final",
    )
    _write(tmp_path / "configs" / "sweep.yaml", tiny)
    work = tmp_path / "work"
    work.mkdir()
    out = _run(["sweep", "../configs/sweep.yaml", "ray.num_cpus=2"], cwd=work)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    sweep_dir = work / "runs" / "own" / "s1"
    stored = {
        s: pd.read_parquet(sweep_dir / "tasks" / "fpb_sorted" / f"{s}.parquet")
        for s in ("train", "validation", "test")
    }
    assert {s: len(f) for s, f in stored.items()} == {"train": 48, "validation": 12, "test": 40}
    source = pd.Series([t.strip().lower() for t in quirky_rows(300)["tone"]])
    whole = source.value_counts(normalize=True)
    for split in ("train", "test"):  # within 5 points of the file's label shares
        got = stored[split]["gold"].value_counts(normalize=True)
        assert all(abs(got.get(lab, 0) - whole[lab]) <= 0.05 for lab in LABELS), (split, got)
    results = pd.read_parquet(sweep_dir / "results.parquet")
    assert set(results["task"]) == {"fpb_sorted"} and results["test_n"].eq(40).all()
    manifest = json.loads((sweep_dir / "tasks" / "fpb_sorted" / "manifest.json").read_text())
    reports = {r["split"]: r for r in manifest["reports"]}
    assert reports["train"]["source_rows"] == 210 and reports["test"]["source_rows"] == 60
    assert not any(r["warnings"] for r in reports.values())
    # what a trial does first: the run's own rows, with the users' files gone
    (tmp_path / "data" / "fpb_sorted.csv").unlink()
    (tmp_path / "tasks" / "fpb.yaml").unlink()
    check = (
        "import sys, yaml; from pathlib import Path; "
        "from raysys.tasks.store import load_run_tasks; from raysys.sweep.trial import "
        "trial_config, eval_rows; d = Path(sys.argv[1]); load_run_tasks(d / 'tasks'); "
        "cfg = trial_config(yaml.safe_load((d / 'config.yaml').read_text())); "
        "print(len(eval_rows(cfg, 'test')['fpb_sorted'][1]))"
    )
    probe = subprocess.run(
        [sys.executable, "-c", check, str(sweep_dir)],
        cwd="/",
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert probe.returncode == 0 and probe.stdout.strip() == "40", probe.stderr[-2000:]


def _pipeline_files(tmp_path: Path, with_pool: bool) -> Path:
    """A trainable CSV task, a test-only stance task and (optionally) its pool file."""
    from raysys.tasks import build_splits

    (tmp_path / "data").mkdir(exist_ok=True)
    for split, rows in build_splits("news_sentiment", {"train": 48, "test": 12}, 3).items():
        pd.DataFrame(
            {"headline": [r["input"] for r in rows], "tone": [r["gold"] for r in rows]}
        ).to_csv(tmp_path / "data" / f"news_{split}.csv", index=False)
    stance = build_splits("fomc_stance", {"test": 24}, 5)["test"]
    pd.DataFrame(
        {"sentence": [r["input"] for r in stance[:12]], "stance": [r["gold"] for r in stance[:12]]}
    ).to_csv(tmp_path / "data" / "stance_test.csv", index=False)
    # unlabeled inputs; half keep a held-back gold to score the kept labels
    pool = pd.DataFrame(
        {
            "sentence": [r["input"] for r in stance[12:]],
            "stance": [r["gold"] if i % 2 else "" for i, r in enumerate(stance[12:])],
        }
    )
    pool.to_csv(tmp_path / "data" / "stance_pool.csv", index=False)
    news = _write(
        tmp_path / "tasks" / "news.yaml",
        {
            "name": "my_news",
            "kind": "classification",
            "labels": LABELS,
            "prompt": "Tone?\n{input}\nEnd with 'Answer: <tone>'.",
            "source": {
                "splits": {"train": "../data/news_train.csv", "test": "../data/news_test.csv"}
            },
            "columns": {"input": "headline", "gold": "tone"},
        },
    )
    stance_task = _write(
        tmp_path / "tasks" / "stance.yaml",
        {
            "name": "my_stance",
            "kind": "classification",
            "labels": ["hawkish", "dovish", "neutral"],
            "prompt": "Stance?\n{input}\nEnd with 'Answer: <stance>'.",
            "source": {"splits": {"test": "../data/stance_test.csv"}},
            "columns": {"input": "sentence", "gold": "stance"},
        },
    )
    cfg = yaml.safe_load((REPO / "configs" / "pipeline_tiny.yaml").read_text())
    synth = {"task": "../tasks/stance.yaml", "pool": "../data/stance_pool.csv"}
    cfg["pipeline"].update(
        tasks=["../tasks/news.yaml"],
        synth_tasks=[synth if with_pool else "../tasks/stance.yaml"],
        eval_tasks=None,
        train_size=48,
        test_size=12,
        stages={"eval_base": False, "sft": True, "dpo": False, "synth": True},
    )
    cfg["pipeline"]["synth"].update(size=8, samples=2, shard_size=8)
    cfg["run"] = {"name": "own_pipe", "storage_path": str(tmp_path / "runs"), "run_id": "p1"}
    # the fomc_stance generator's pool has near-twins of its test sentences (the known leak
    # the contamination check reports: README, Contamination check)
    cfg["contamination"] = {"allow": True}
    assert news and stance_task
    return _write(tmp_path / "configs" / f"pipeline_{with_pool}.yaml", cfg)


def test_a_pipeline_labels_a_test_only_task_from_its_pool_file(ray_local, tmp_path):
    from raysys.config import PipelineConfig, load_config
    from raysys.pipeline.driver import run_pipeline

    cfg = load_config(PipelineConfig, _pipeline_files(tmp_path, with_pool=True), ["ray.num_cpus=2"])
    out = run_pipeline(cfg)
    synth = out.summary["synthesis"][0]["tasks"]["my_stance"]
    assert synth["inputs"] == 8 and synth["pool"] == 8
    labels = pd.read_parquet(next(out.run_dir.glob("synth_r1-*")) / "my_stance" / "labels.parquet")
    pool_texts = set(pd.read_csv(tmp_path / "data" / "stance_pool.csv")["sentence"])
    assert (
        set(labels["input"]) <= pool_texts and labels["id"].str.startswith("my_stance-pool-").all()
    )
    stored = pd.read_parquet(out.run_dir / "tasks" / "my_stance" / "pool.parquet")
    # a stratified sample of the pool: unlabeled rows and rows with held-back gold
    assert len(stored) == 8 and stored["gold"].isna().any() and stored["gold"].notna().any()
    assert {m["stage"] for m in out.summary["models"]} >= {"sft", "sft_r1"}


def test_a_test_only_synth_task_without_a_pool_is_refused_before_any_stage(tmp_path):
    config = _pipeline_files(tmp_path, with_pool=False)
    out = _run(["pipeline", str(config)], cwd=tmp_path)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    lines = error_lines(out.stderr)
    assert len(lines) == 1 and "my_stance has no pool of unlabeled inputs" in lines[0]
    assert "pool: unlabeled.csv" in lines[0]
    assert not (tmp_path / "runs").exists()  # nothing written


@pytest.mark.parametrize("overlap", [True])
def test_a_pool_file_with_test_inputs_is_refused(tmp_path, overlap):
    from raysys.config import PipelineConfig, load_config
    from raysys.errors import UserError
    from raysys.pipeline.driver import task_needs
    from raysys.tasks.store import prepare

    config = _pipeline_files(tmp_path, with_pool=True)
    test = pd.read_csv(tmp_path / "data" / "stance_test.csv")
    pool = pd.read_csv(tmp_path / "data" / "stance_pool.csv")
    pool.loc[0, "sentence"] = test.loc[3, "sentence"].upper()  # case does not hide it
    pool.to_csv(tmp_path / "data" / "stance_pool.csv", index=False)
    cfg = load_config(PipelineConfig, config)
    with pytest.raises(
        UserError, match=r"stance_pool.csv: 1 input\(s\) also in the my_stance test"
    ):
        prepare(tmp_path / "runs" / "x", task_needs(cfg), 0)
    assert not (tmp_path / "runs").exists()
