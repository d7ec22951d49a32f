"""Sweeps through the CLI: a real Ray Tune sweep on the tiny model that is killed and
resumed, and `raysys status` reading it from this process while it runs and once done."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from raysys.cli import main
from tests.fixtures import REPO, error_lines, status_of

TINY = REPO / "configs" / "sweep_tiny.yaml"


def test_dry_run_prints_the_table_and_writes_nothing(tmp_path, capsys):
    assert main(["sweep", str(TINY), f"run.storage_path={tmp_path}", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 trials" in out and "news_sentiment-g0-m0-f0p5-s0" in out
    assert "2 trial(s) at a time" in out
    assert list(tmp_path.iterdir()) == []


def test_resume_of_a_missing_sweep_is_refused(tmp_path, capsys):
    code = main(["sweep", str(TINY), f"run.storage_path={tmp_path}", "--resume"])
    assert code == 2
    assert "--resume: no sweep found under" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nope")]) == 2


# --------------------------------------------------------------------------- a real sweep


def _sweep_cli(storage: Path, *extra: str, faults: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        _sweep_args(storage, *extra),
        env=_sweep_env(faults),
        capture_output=True,
        text=True,
        timeout=900,
    )


def _sweep_args(storage: Path, *extra: str) -> list[str]:
    args = [str(TINY), f"run.storage_path={storage}", "run.run_id=s1", *extra]
    return [sys.executable, "-m", "raysys.cli", "sweep", *args]


def _sweep_env(faults: str) -> dict[str, str]:
    return {**os.environ, "RAYSYS_FAULTS": faults}


def _sweep_watched(
    storage: Path, *extra: str, faults: str = ""
) -> tuple[subprocess.CompletedProcess, str]:
    """The sweep CLI in its own process; `raysys status` from this one, polled until it
    shows a trial running. Returns the sweep's outcome and that status block."""
    sweep_dir = storage / "sweep_tiny" / "s1"
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            _sweep_args(storage, *extra), env=_sweep_env(faults), stdout=out, stderr=err, text=True
        )
        seen = ""
        while proc.poll() is None and "\n  running " not in seen:
            time.sleep(1.0)
            if (sweep_dir / "config.yaml").is_file():
                seen = status_of(sweep_dir)
        proc.wait(timeout=900)
        out.seek(0), err.seek(0)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read()), seen


@pytest.fixture(scope="module")
def killed_and_resumed(ray_local, tiny_model, tmp_path_factory):
    """The tiny 2 cocktails x 2 fractions sweep: its driver dies (like a SIGKILL) once a
    trial has finished; `--resume` then finishes the grid."""
    storage = tmp_path_factory.mktemp("sweeps")
    # Ray Train checkpoints through pyarrow's filesystems, as s3:// or gs:// would go
    ckpt = f"train.checkpoint_storage=file://{storage}/ckpt"
    killed, while_running = _sweep_watched(storage, ckpt, faults="sweep_exit_after_trials=1")
    assert killed.returncode == 137, killed.stdout[-3000:] + killed.stderr[-3000:]
    sweep_dir = storage / "sweep_tiny" / "s1"
    done_before = {p.parent.name for p in sweep_dir.glob("trials/*/result.json")}
    resumed = _sweep_cli(storage, ckpt, "--resume")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    return storage, sweep_dir, done_before, resumed, while_running


def test_status_reads_the_sweep_while_it_runs_and_once_it_finished(killed_and_resumed):
    _, sweep_dir, _, _, while_running = killed_and_resumed
    grid = [t["trial_id"] for t in json.loads((sweep_dir / "grid.json").read_text())]
    assert f"sweep     {sweep_dir}\nstate     running: trials on Ray Tune" in while_running
    running = next(ln for ln in while_running.splitlines() if ln.startswith("  running "))
    ids = [t.split(" (")[0] for t in running.removeprefix("  running ").split(", ")]
    assert ids and set(ids) <= set(grid), while_running  # Tune's record, raysys's ids
    assert f"trials    {len(grid)}: " in while_running and "report    none yet" in while_running
    done = status_of(sweep_dir)
    assert "state     finished" in done
    assert f"trials    {len(grid)}: {len(grid)} done, 0 running, 0 errored, 0 pending" in done
    assert "remaining none" in done and f"report    {sweep_dir / 'report.html'}" in done


def test_finished_trials_are_not_run_again(killed_and_resumed):
    _, sweep_dir, done_before, _, _ = killed_and_resumed
    assert done_before  # the driver died after at least one trial finished
    for trial in done_before:
        attempts = (sweep_dir / "trials" / trial / "train_attempts.jsonl").read_text()
        assert len(attempts.splitlines()) == 1, trial
    assert len(list(sweep_dir.glob("trials/*/result.json"))) == 4


def test_each_trial_checkpoints_in_its_own_folder_of_the_checkpoint_storage(killed_and_resumed):
    storage, sweep_dir, _, _, _ = killed_and_resumed
    trials = sorted(p.name for p in (sweep_dir / "trials").iterdir())
    root = storage / "ckpt" / "sweep_tiny" / "s1"  # <name>/<run_id>/<trial>
    assert sorted(p.name for p in root.iterdir()) == trials
    for t in trials:
        assert list((root / t / "train").glob("checkpoint_0*/checkpoint/adapter_config.json")), t


def test_data_is_built_once_per_cocktail_and_fraction(killed_and_resumed):
    storage, sweep_dir, _, _, _ = killed_and_resumed
    assert len([p for p in (storage / "cocktails").iterdir() if p.is_dir()]) == 4
    meta = json.loads((sweep_dir / "sweep.json").read_text())
    assert meta["datasets"] == 4 and meta["data_cached"] == 4  # built by the killed run
    assert meta["resumed"] is True


def test_results_table_has_one_row_per_trial_and_task(killed_and_resumed):
    _, sweep_dir, _, _, _ = killed_and_resumed
    res = pd.read_parquet(sweep_dir / "results.parquet")
    assert len(res) == (4 + 1) * 2  # 4 trials + the base model, x 2 tasks
    assert not res.duplicated(["trial_id", "task"]).any()
    trained = res[res.trial_id != "base"]
    assert trained["val_main"].notna().all() and res["test_main"].notna().all()
    assert set(trained["fraction"]) == {0.5, 1.0}
    own = trained[trained.cocktail == trained.task]
    assert (own["task_train_rows"] == own["fraction"] * 32).all()
    assert (trained[trained.cocktail != trained.task]["task_train_rows"] == 0).all()
    preds = pd.read_parquet(sweep_dir / "test_predictions.parquet")
    assert len(preds) == 5 * 2 * 16 and set(preds.adapter) == set(res.trial_id)


def test_cost_columns_add_up_to_at_most_the_study_total(killed_and_resumed):
    """Each trial's CPU-seconds, tokens and cost (configs/sweep_tiny.yaml prices CPUs);
    the study (trials, the killed run's included, + the test pass) in sweep.json, in the
    report and in `raysys status`."""
    _, sweep_dir, _, _, _ = killed_and_resumed
    res = pd.read_parquet(sweep_dir / "results.parquet")
    trials = res[res.trial_id != "base"].drop_duplicates("trial_id")
    for col in ("cpu_s", "tokens_trained", "tokens_generated", "cost_usd"):
        assert (trials[col] > 0).all(), (col, trials[col].tolist())
    assert (trials["gpu_s"] == 0).all()
    assert trials["cost_usd"].to_numpy() == pytest.approx(trials["cpu_s"] / 3600 * 0.04)
    cost = json.loads((sweep_dir / "sweep.json").read_text())["cost"]
    study, test = cost["study"], cost["test_pass"]
    assert trials["cost_usd"].sum() == pytest.approx(cost["trials"]["cost_usd"])
    assert test["cost_usd"] > 0 and test["tokens_generated"] > 0
    assert trials["cost_usd"].sum() < study["cost_usd"]
    assert study["cost_usd"] == pytest.approx(trials["cost_usd"].sum() + test["cost_usd"])
    assert cost["answers"] == 5 * 2 * 16  # base + 4 adapters x 2 tasks x 16 test rows
    assert cost["cost_per_answer_usd"] == pytest.approx(study["cost_usd"] / 160)
    assert sum(c["cost_usd"] for c in cost["per_cocktail"].values()) == pytest.approx(
        trials["cost_usd"].sum()
    )
    md = (sweep_dir / "report.md").read_text()
    assert "## Cost" in md and "Cost per answer: $" in md and "cost USD" in md
    spent = next(ln for ln in status_of(sweep_dir).splitlines() if ln.startswith("spent"))
    assert f"${study['cost_usd']:,.4g} (the whole study" in spent, spent


def test_report_has_every_section(killed_and_resumed):
    _, sweep_dir, _, resumed, _ = killed_and_resumed
    stdout = resumed.stdout
    md = (sweep_dir / "report.md").read_text().lower()
    for section in ("transfer", "leaderboard", "scaling", "overlap with evaluation splits"):
        assert section in md
    assert "none found" in md  # the contamination check ran (and was kept over the resume)
    html = (sweep_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and 'src="http' not in html
    assert "report.html" in stdout


def test_the_console_holds_raysys_lines_and_the_libraries_output_is_in_the_run(
    killed_and_resumed,
):
    """Quiet by default: no Tune table, no Train report dicts, no Ray warnings on the
    console; they are in <run>/logs/driver.log and Ray's session logs (both named once)."""
    _, sweep_dir, _, resumed, _ = killed_and_resumed
    lines = resumed.stdout.splitlines()
    table = [ln for ln in lines if ln.startswith("|")]  # the results' headline
    own = [ln for ln in lines if ln.startswith("[raysys ")]
    rest = [ln for ln in lines if ln.strip() and ln not in table and ln not in own]
    assert len(rest) <= 3, rest  # the summary, a retry note, "Report: ..."
    assert len(lines) < 40, resumed.stdout
    for noise in (
        "Trial status",
        "╭",
        "{'loss'",
        "(raylet)",
        "RayTrainWorker",
        "TrainActor",
        "WARNING",
    ):
        assert noise not in resumed.stdout + resumed.stderr, noise
    assert resumed.stderr.strip() == ""
    assert any("libraries' output" in ln and "driver.log" in ln for ln in own)
    assert any("Ray workers' output" in ln for ln in own)
    assert (sweep_dir / "logs" / "driver.log").stat().st_size > 0


def test_tune_keeps_tensorboard_logs_per_trial(killed_and_resumed):
    _, sweep_dir, _, _, _ = killed_and_resumed
    events = list((sweep_dir / "tune").glob("*/events.out.tfevents*"))
    assert {p.parent.name for p in events} >= {"news_sentiment-g0-m0-f1-s0"}
    # Tune saw the training loss step by step (ASHA stops on it), then the final result:
    # the trials the resumed driver trained report their steps before it
    results = [
        [json.loads(ln) for ln in p.read_text().splitlines()]
        for p in (sweep_dir / "tune").glob("*/result.json")
    ]
    stepped = [r for r in results if len(r) > 1]
    assert stepped
    for rows in stepped:
        assert [r["step"] for r in rows[:-1]] == list(range(1, len(rows)))
        assert all(isinstance(r["loss"], float) for r in rows)
        assert "val_main_mean" in rows[-1] and "val_main_mean" not in rows[0]


def test_report_command_rewrites_the_report(killed_and_resumed, capsys):
    _, sweep_dir, _, _, _ = killed_and_resumed
    (sweep_dir / "report.html").unlink()
    assert main(["report", str(sweep_dir)]) == 0
    assert (sweep_dir / "report.html").is_file()
    assert "report.html" in capsys.readouterr().out


def test_dry_run_estimates_a_bigger_grid_from_this_sweeps_timings(killed_and_resumed, capsys):
    """The finished sweep's own files time a grid 3 times its size; the cocktail study's
    grid (another model) is refused in one line."""
    storage, sweep_dir, _, _, _ = killed_and_resumed
    plan = f"run.storage_path={storage / 'plan'}"
    args = ["sweep", str(TINY), plan, "sweep.seeds=[0,1,2]", "--dry-run"]
    assert main([*args, "--timings", str(sweep_dir)]) == 0
    out = capsys.readouterr().out
    assert f"Estimate from {sweep_dir}: 4 finished trial(s) of tiny-random (float32, CPU)" in out
    assert "This grid: 12 trials of 2-4 training steps" in out
    slots = [ln.split()[0] for ln in out.split(" slots ", 1)[1].splitlines()[1:6]]
    assert slots == ["1", "2*", "8", "32", "64"]
    assert "from validation and test passes" in out  # both kinds of pass were measured
    assert "Estimated cost (planned): " in out and "CPU-s" in out and "; $" in out
    assert f"measured in {sweep_dir} (its own grid, 4 trial(s)): " in out
    big = str(REPO / "configs" / "sweep.yaml")
    assert main(["sweep", big, plan, "--dry-run", "--timings", str(sweep_dir / "sweep.json")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(error_lines(err)) == 1 and "model.source=" in err
    assert not (storage / "plan").exists()


def test_storage_that_turns_unwritable_is_one_clear_line_and_keeps_the_files(
    killed_and_resumed, capsys
):
    import os
    import subprocess

    _, sweep_dir, _, _, _ = killed_and_resumed
    before = (sweep_dir / "report.md").read_text()
    # root ignores permission bits; an immutable folder refuses root too
    lock = ["chattr", "+i"] if os.geteuid() == 0 else ["chmod", "a-w"]
    unlock = ["chattr", "-i"] if os.geteuid() == 0 else ["chmod", "u+w"]
    subprocess.run([*lock, str(sweep_dir)], check=True)
    try:
        rc = main(["report", str(sweep_dir)])
    finally:
        subprocess.run([*unlock, str(sweep_dir)], check=True)
    err = error_lines(capsys.readouterr().err)
    assert rc == 1
    assert len(err) == 1 and err[0].startswith("raysys: error: storage not writable"), err
    assert "run the same command again" in err[0]
    assert (sweep_dir / "report.md").read_text() == before  # the old report is whole
    assert not [p.name for p in sweep_dir.iterdir() if ".tmp-" in p.name]


def test_a_second_sweep_in_the_same_directory_is_refused(killed_and_resumed):
    storage, _, _, _, _ = killed_and_resumed
    again = _sweep_cli(storage)
    assert again.returncode == 2 and "already holds a sweep" in again.stderr


def test_an_unwritable_storage_path_is_refused_before_any_work(capsys):
    code = main(["sweep", str(TINY), "run.storage_path=/proc/raysys-cannot-write", "--dry-run"])
    assert code == 0  # a dry run writes nothing, so it does not care
    capsys.readouterr()
    code = main(["sweep", str(TINY), "run.storage_path=/proc/raysys-cannot-write"])
    assert code == 2
    err = capsys.readouterr().err
    assert "run.storage_path: cannot write to /proc/raysys-cannot-write" in err
    assert len(error_lines(err)) == 1


@pytest.mark.long  # ≈ 2 min on 2 cores: `make test-all`, not CI
def test_an_errored_trial_is_named_with_its_cause_and_retried(ray_local, tiny_model, tmp_path):
    """One trial of two raises: the sweep analyses the other, exits 1 with one line that
    names the trial and its cause, records it in sweep.json; `--resume --retry-errored`
    then runs only that trial."""
    one_fraction = "sweep.fractions=[1.0]"
    no_retry = "sweep.max_trial_failures=0"  # (the submitted-job test covers Tune's retry)
    failed = _sweep_cli(tmp_path, one_fraction, no_retry, faults="sweep_fail_trial=0")
    assert failed.returncode == 1, failed.stdout[-3000:] + failed.stderr[-3000:]
    sweep_dir = tmp_path / "sweep_tiny" / "s1"
    bad = json.loads((sweep_dir / "grid.json").read_text())[0]["trial_id"]
    err = [ln for ln in failed.stderr.splitlines() if ln.startswith("raysys: error:")]
    assert len(err) == 1, failed.stderr[-3000:]
    assert f"1 of 2 trials errored ({bad}); {bad} failed with: " in err[0]
    assert "fault injection: trial" in err[0] and "--resume --retry-errored" in err[0]
    meta = json.loads((sweep_dir / "sweep.json").read_text())
    assert meta["errored"] == [bad] and list(meta["failures"]) == [bad]
    assert len(meta["failures"][bad]) == 1 and "fault injection" in meta["failures"][bad][0]
    assert set(pd.read_parquet(sweep_dir / "results.parquet").trial_id) == {
        "base",
        *(t.name for t in (sweep_dir / "trials").iterdir() if t.name != bad),
    }
    retried = _sweep_cli(tmp_path, one_fraction, no_retry, "--resume", "--retry-errored")
    assert retried.returncode == 0, retried.stdout[-3000:] + retried.stderr[-3000:]
    meta = json.loads((sweep_dir / "sweep.json").read_text())
    assert meta["finished"] == 2 and meta["errored"] == []
    for trial in (sweep_dir / "trials").iterdir():  # the good trial was not trained again
        assert len((trial / "train_attempts.jsonl").read_text().splitlines()) == 1, trial.name
