"""`raysys search` through the CLI: a real search on the tiny model (a one-cocktail grid,
2 space-filling mixtures, 1 proposed) whose driver dies right after the surrogate's first
proposal; `--resume` runs exactly those mixtures and writes the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from raysys.cli import main
from tests.fixtures import REPO, error_lines, status_of

TINY = REPO / "configs" / "search_tiny.yaml"


def _search(storage: Path, *extra: str, faults: str = "") -> subprocess.CompletedProcess:
    args = [str(TINY), f"run.storage_path={storage}", "run.run_id=s1", *extra]
    return subprocess.run(
        [sys.executable, "-m", "raysys.cli", "search", *args],
        env={**os.environ, "RAYSYS_FAULTS": faults},
        capture_output=True,
        text=True,
        timeout=1200,
    )


def test_dry_run_prints_the_baseline_and_round_zero_and_writes_nothing(tmp_path, capsys):
    assert main(["search", str(TINY), f"run.storage_path={tmp_path}", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "grid baseline:" in out and "1 trials" in out
    assert "search budget: trials 3" in out and "round 0: 2 mixtures x 1 seed(s)" in out
    assert out.count("mix-") == 2
    assert list(tmp_path.iterdir()) == []


def test_a_config_without_a_search_section_is_one_line(tmp_path, capsys):
    sweep = REPO / "configs" / "sweep_tiny.yaml"
    assert main(["search", str(sweep), f"run.storage_path={tmp_path}"]) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "search: the config has no `search` section" in err[0]
    assert list(tmp_path.iterdir()) == []


# The kill/resume search takes ≈ 3-4 min on 2 cores: `long` keeps CI under its 40 min
# (`make test-all` runs it); the dry runs above stay in `make test`.
@pytest.fixture(scope="module")
def searched(ray_local, tiny_model, tmp_path_factory):
    storage = tmp_path_factory.mktemp("searches")
    killed = _search(storage, faults="search_exit_after_proposal=1")
    assert killed.returncode == 137, killed.stdout[-3000:] + killed.stderr[-3000:]
    run = storage / "search_tiny" / "s1"
    before = json.loads((run / "search.json").read_text())
    stamps = {p.parent.name: p.stat().st_mtime_ns for p in run.glob("trials/*/result.json")}
    resumed = _search(storage, "--resume")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    return run, before, stamps, resumed


@pytest.mark.long
def test_the_resumed_search_runs_the_rounds_it_proposed(searched):
    run, before, stamps, _ = searched
    after = json.loads((run / "search.json").read_text())
    assert [r["name"] for r in before["rounds"]] == ["grid", "r0", "r1"]
    proposed = lambda state: [(r["name"], r["trials"], r.get("mixtures")) for r in state["rounds"]]  # noqa: E731
    assert proposed(after) == proposed(before)  # r1 was proposed once, before the kill
    assert all(r["tune_seconds"] > 0 for r in after["rounds"])
    assert before["rounds"][2]["propose_seconds"] > 0
    r1 = after["rounds"][2]
    assert r1["kind"] == "proposed" and r1["fitted_on"] == 2 and len(r1["mixtures"]) == 1
    assert all(isinstance(m["predicted"], float) for m in r1["mixtures"])
    # the 3 trials of grid and r0 finished before the kill and were not run again
    assert len(stamps) == 3
    for tid, ns in stamps.items():
        assert (run / "trials" / tid / "result.json").stat().st_mtime_ns == ns
    assert sorted(p.name for p in run.glob("tune-*")) == ["tune-grid", "tune-r0", "tune-r1"]


@pytest.mark.long
def test_results_cover_the_grid_and_every_search_trial(searched):
    run, _, _, resumed = searched
    res = pd.read_parquet(run / "results.parquet")
    trials = res[res["trial_id"] != "base"].drop_duplicates("trial_id")
    assert sorted(trials["cocktail_kind"].value_counts().items()) == [("all", 1), ("search", 3)]
    assert trials["val_main"].notna().all() and trials["test_main"].notna().all()
    meta = json.loads((run / "sweep.json").read_text())
    assert meta["search"]["spent"]["trials"] == 3 and meta["search"]["budget"]["trials"] == 3
    assert "search: rounds grid, r0, r1; spent trials 3" in resumed.stdout
    assert "trials    4: 4 done, 0 running, 0 errored, 0 pending" in status_of(run)


@pytest.mark.long
def test_the_report_shows_rounds_predictions_the_comparison_and_the_budget(searched):
    run, _, _, _ = searched
    md = (run / "report.md").read_text()
    for heading in (
        "## Mixture search",
        "### Mixtures: predicted vs measured validation objective",
        "### Chosen mixture vs the grid's best point",
        "### Budget",
        "## Leaderboard",
    ):
        assert heading in md
    assert "(round 0)" in md and ("mcnemar" in md or "permutation" in md)
    assert "| search budget |  | trials 3 |" in md
    assert (run / "search.csv").is_file()
    # 1 mixture in r1: too few for a rank correlation, which is not printed
    r1 = next(ln for ln in md.splitlines() if ln.startswith("| r1 "))
    assert "| – |" in r1


@pytest.mark.long
def test_a_second_search_in_the_same_directory_is_refused(searched, capsys):
    run, _, _, _ = searched
    storage = run.parents[1]
    assert main(["search", str(TINY), f"run.storage_path={storage}", "run.run_id=s1"]) == 2
    assert "already holds a search; add --resume" in capsys.readouterr().err


@pytest.mark.long
def test_dry_run_estimates_time_and_cost_from_the_searchs_timings(searched, capsys):
    run, _, _, _ = searched
    args = ["search", str(TINY), f"run.storage_path={run.parents[1]}", "run.run_id=s2"]
    assert main([*args, "--dry-run", "--timings", str(run), "cost.prices={CPU: 0.04}"]) == 0
    out = capsys.readouterr().out
    assert f"Estimate from {run}: 4 finished trial(s) of tiny-random" in out
    assert "This grid: 4 trials" in out and "Estimated cost (planned):" in out
    assert "sized like round 0's trials" in out
    assert not (run.parent / "s2").exists()
