"""The study pipeline on the tiny model: every stage, a kill inside a stage and the
resume, config-keyed stage reuse, the sweep as SFT stage (the quickstart's shape)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from raysys.config import PipelineConfig, load_config
from raysys.errors import ConfigError
from tests.fixtures import REPO, status_of

TINY = REPO / "configs" / "pipeline_tiny.yaml"
ALL_STAGES = [
    "data",
    "eval_base",
    "sft",
    "eval_sft",
    "dpo_probe",
    "dpo",
    "eval_dpo",
    "synth_r1",
    "sft_r1",
    "eval_r1",
]


def _stage_dirs(run_dir: Path) -> dict[str, Path]:
    return {p.name.rsplit("-", 1)[0]: p for p in run_dir.iterdir() if p.is_dir() and "-" in p.name}


def _cli(args: list[str], faults: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAYSYS_FAULTS"] = faults
    return subprocess.run(
        [sys.executable, "-m", "raysys.cli", "pipeline", str(TINY), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """The tiny pipeline killed (os._exit) inside the synthesis stage after one shard,
    then resumed with --resume: two CLI processes, each with its own local Ray."""
    storage = tmp_path_factory.mktemp("pipe")
    args = [f"run.storage_path={storage}", "ray.num_cpus=2"]
    first = _cli(args, faults="synth_crash_after_shards=1")
    run_dir = next((storage / "pipeline_tiny").iterdir())
    dirs = _stage_dirs(run_dir)
    before = {
        name: (d / "stage.json").stat().st_mtime_ns
        for name, d in dirs.items()
        if (d / "stage.json").is_file()
    }
    shards = sorted((dirs["synth_r1"] / "news_sentiment" / "shards").glob("*.parquet"))
    shard_mtimes = {s.name: s.stat().st_mtime_ns for s in shards}
    mid_status = status_of(run_dir)  # what a stage left mid-way looks like from outside
    second = _cli([*args, "--resume"])
    return SimpleNamespace(
        first=first,
        second=second,
        run_dir=run_dir,
        before=before,
        shard_mtimes=shard_mtimes,
        mid_status=mid_status,
    )


def test_a_kill_inside_a_stage_resumes_without_redoing_finished_stages(killed_and_resumed):
    k = killed_and_resumed
    assert k.first.returncode == 1, k.first.stdout[-3000:] + k.first.stderr[-3000:]
    # everything before synthesis finished in the first process; synthesis did not
    assert sorted(k.before) == sorted(ALL_STAGES[:7])
    assert list(k.shard_mtimes) == ["00000.parquet"]
    assert k.second.returncode == 0, k.second.stdout[-3000:] + k.second.stderr[-3000:]
    dirs = _stage_dirs(k.run_dir)
    for name, mtime in k.before.items():  # not one finished stage ran again
        assert (dirs[name] / "stage.json").stat().st_mtime_ns == mtime, name
    assert "done earlier" in k.second.stdout
    shards = dirs["synth_r1"] / "news_sentiment" / "shards"
    assert (shards / "00000.parquet").stat().st_mtime_ns == k.shard_mtimes["00000.parquet"]
    assert sorted(p.name for p in shards.glob("*.parquet")) == ["00000.parquet", "00001.parquet"]
    # one training attempt per training stage: the resumed process trained only sft_r1
    for name in ("sft", "dpo"):
        steps = json.loads((dirs[name] / "metrics.json").read_text())["history"]
        assert [h["step"] for h in steps if "loss" in h] == list(
            range(1, len([h for h in steps if "loss" in h]) + 1)
        )


def test_every_stage_ran_and_the_report_has_the_stage_table(killed_and_resumed):
    k = killed_and_resumed
    dirs = _stage_dirs(k.run_dir)
    assert sorted(dirs) == sorted(ALL_STAGES)
    assert all((d / "stage.json").is_file() for d in dirs.values())
    summary = json.loads((k.run_dir / "pipeline.json").read_text())
    assert [m["stage"] for m in summary["models"]] == ["base", "sft", "dpo", "sft_r1"]
    assert summary["dpo"]["run"] is True and summary["dpo"]["forced"] is True
    assert summary["final_model"]["stage"] == "sft_r1"
    by = {(m["stage"], r["task"]): r for m in summary["models"] for r in m["results"]}
    # a random model never writes "Answer: X"; 40 SFT steps teach the format
    assert by[("base", "news_sentiment")]["missing_rate"] == 1.0
    assert by[("sft", "news_sentiment")]["missing_rate"] <= 0.2
    assert {t for _, t in by} == {"news_sentiment", "fomc_stance"}
    # the DPO adapter is the SFT adapter with the DPO delta concatenated (rank 8 + 4)
    adapter = json.loads((dirs["dpo"] / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 12
    # synthesis: labels voted, kept rows trained on next to the gold rows
    syn = summary["synthesis"][0]["tasks"]["news_sentiment"]
    assert syn["inputs"] == 12 and 0 < syn["kept"] <= 12
    assert syn["kept_label_accuracy"] is not None  # news_sentiment has gold to check against
    train = pd.read_parquet(dirs["sft_r1"] / "train.parquet")
    assert (train["source"] == "synth:news_sentiment").sum() == syn["sft_rows"] > 0
    assert (train["source"] != "synth:news_sentiment").sum() == 48  # the gold rows
    # probe pairs: rejected outputs are the SFT model's own generations
    pairs = pd.read_parquet(dirs["dpo_probe"] / "pairs.parquet")
    gens = pd.read_parquet(dirs["dpo_probe"] / "predictions.parquet")
    assert set(r[0]["content"] for r in pairs["rejected"]) <= set(gens["generated_text"])
    report = (k.run_dir / "report.md").read_text()
    for text in ("Stages x tasks", "DPO gate", "Synthesis", "Stage wall times", "sft_r1"):
        assert text in report
    # the stage chart, and the synthesis curves when 10 gold-labeled inputs were kept
    curves = "kept-label accuracy vs yield" in report and "No threshold keeps" not in report
    images = (k.run_dir / "report.html").read_text().count("data:image/png;base64")
    assert images == 1 + curves
    csv = pd.read_csv(k.run_dir / "pipeline.csv")
    assert list(csv["stage"].unique()) == ["base", "sft", "dpo", "sft_r1"]


def test_status_reads_the_stages_mid_way_and_finished(killed_and_resumed):
    k = killed_and_resumed
    mid = k.mid_status  # killed inside synth_r1: its folder has a shard, no stage.json
    assert f"pipeline  {k.run_dir}\nstate     running: stage 8/10 synth_r1" in mid
    assert "stages    10: 7 done, 1 running, 2 pending" in mid
    assert "  running synth_r1\n  pending sft_r1, eval_r1\n" in mid
    assert "report    none yet" in mid
    done = status_of(k.run_dir)
    assert "state     finished" in done and "stages    10: 10 done\n" in done
    # the config's stage plan is the order the stages ran in
    ran = [s["stage"] for s in json.loads((k.run_dir / "pipeline.json").read_text())["stages"]]
    assert ran == ALL_STAGES
    line = next(ln for ln in done.splitlines() if ln.startswith("  done    "))
    assert [x.split(" (")[0] for x in line[10:].split(", ")] == ALL_STAGES
    assert f"report    {k.run_dir / 'report.html'}" in done


def test_a_config_change_redoes_only_the_stages_it_touches(killed_and_resumed, ray_local):
    from raysys.pipeline.driver import run_pipeline

    k = killed_and_resumed
    old = _stage_dirs(k.run_dir)
    cfg = load_config(
        PipelineConfig,
        TINY,
        [
            f"run.storage_path={k.run_dir.parent.parent}",
            f"run.run_id={k.run_dir.name}",
            "pipeline.dpo.learning_rate=5e-4",
        ],
    )
    out = run_pipeline(cfg)
    ran = {s["stage"] for s in out.summary["stages"] if not s["skipped"]}
    assert ran == {"dpo", "eval_dpo", "synth_r1", "sft_r1", "eval_r1"}
    new = _stage_dirs(k.run_dir)  # the old dpo dirs stay beside the new ones
    assert new["sft"] == old["sft"] and new["eval_base"] == old["eval_base"]
    assert len(list(k.run_dir.glob("dpo-*"))) == 2


@pytest.mark.long  # ≈ 2 min on 2 cores: `make test-all`, not CI
def test_sweep_as_the_sft_stage(ray_local, tmp_path):
    """The quickstart's shape: a Tune sweep is the SFT stage; its test pass gives the base
    and SFT rows; the all-tasks trial at the largest fraction feeds the later stages."""
    from raysys.pipeline.driver import run_pipeline

    cfg = load_config(
        PipelineConfig,
        TINY,
        [
            f"run.storage_path={tmp_path}",
            "run.run_id=sw",
            "sweep.cocktails=[singletons]",
            "sweep.fractions=[0.5,1.0]",
            "sweep.validate_in=final",
            "pipeline.dpo_gate.force=false",
        ],
    )
    out = run_pipeline(cfg)
    s = out.summary
    sweep_dir = Path(s["sweep_dir"])
    results = pd.read_parquet(sweep_dir / "results.parquet")
    assert set(results["trial_id"]) == {
        "base",
        "news_sentiment-g0-m0-f0p5-s0",
        "news_sentiment-g0-m0-f1-s0",
    }
    # validation scored in the final pass, next to test (sweep.validate_in=final)
    trained = results[(results["trial_id"] != "base") & (results["task"] == "news_sentiment")]
    assert trained["val_main"].notna().all()  # fomc_stance has no validation split: NaN
    assert not (sweep_dir / "trials" / "news_sentiment-g0-m0-f1-s0" / "eval_validation").exists()
    sft = next(m for m in s["models"] if m["stage"] == "sft")
    row = results[(results["trial_id"] == "news_sentiment-g0-m0-f1-s0")]
    row = row[row["task"] == "news_sentiment"].iloc[0]
    got = next(r for r in sft["results"] if r["task"] == "news_sentiment")
    assert got["main"] == pytest.approx(row["test_main"])
    assert s["stages"][0]["stage"] == "sft" and "data" not in {x["stage"] for x in s["stages"]}
    assert s["dpo"]["forced"] is False and s["dpo"]["run"] == s["dpo"]["triggered"]
    report = (out.run_dir / "report.md").read_text()
    for text in ("Stages x tasks", "The SFT sweep", "Transfer", "Scaling"):
        assert text in report, text
    status = status_of(out.run_dir)  # the sweep inside the pipeline, read as a sweep
    sweep_in_run = sweep_dir.relative_to(out.run_dir).as_posix()
    assert f"sft sweep {sweep_in_run}\n  state     finished" in status
    assert "  trials    2: 2 done, 0 running, 0 errored, 0 pending" in status
    line = next(ln for ln in status.splitlines() if ln.startswith("  done    "))
    assert [x.split(" (")[0] for x in line[10:].split(", ")] == [x["stage"] for x in s["stages"]]


# --------------------------------------------------------------------------- units


def test_dpo_gate_decision():
    from raysys.config import DpoGateSection
    from raysys.pipeline.dpo import dpo_decision

    gate = DpoGateSection(overlength_threshold=0.1, missing_threshold=0.2)
    assert dpo_decision(0.5, 0.0, 10, 3, gate)["run"] is True  # overlong
    assert dpo_decision(0.0, 0.3, 10, 3, gate)["run"] is True  # wrong format
    calm = dpo_decision(0.1, 0.2, 10, 3, gate)  # at the thresholds: not above
    assert calm["run"] is False and "overlength 0.10 (threshold 0.10)" in calm["why"]
    assert dpo_decision(0.9, 0.9, 10, 0, gate)["run"] is False  # nothing to train on
    forced = DpoGateSection(force=True)
    assert dpo_decision(0.0, 0.0, 10, 2, forced)["run"] is True


def test_stage_table_changes_against_the_previous_stage():
    from raysys.pipeline.report import headline, stage_table

    def res(main):
        return [{"task": "news_sentiment", "n": 10, "main": main, "missing_rate": 0.0}]

    summary = {
        "models": [
            {"stage": "base", "results": res(0.0)},
            {"stage": "sft", "results": res(0.4)},
            {"stage": "dpo", "results": res(0.5)},
        ]
    }
    t = stage_table(summary)
    assert list(t["stage"]) == ["base", "sft", "dpo"]
    assert t["change"].iloc[1] == pytest.approx(0.4)
    assert pd.isna(t["change_pct"].iloc[1])  # no % of a zero score
    assert t["change_pct"].iloc[2] == pytest.approx(25.0)
    assert "| news_sentiment | 0.000 | 0.400 | 0.500 |" in headline(summary)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["pipeline.tasks=[fomc_stance]"], "fomc_stance has no training data"),
        (["pipeline.synth_tasks=[fin_ner]"], "fin_ner is not a classification task"),
        (["pipeline.stages.sft=false"], "pipeline.stages.dpo needs the SFT stage"),
        (["pipeline.synth.task=news_sentiment"], "pipeline.synth.task is set by the pipeline"),
        (["sweep.tasks=[news_sentiment]"], "come from the pipeline section"),
        (["pipeline.dpo.method=sft"], "pipeline.dpo trains DPO"),
    ],
)
def test_pipeline_config_errors_name_the_field(overrides, expected):
    from raysys.tasks.checks import load  # the config's checks, then the tasks it names

    with pytest.raises(ConfigError, match=expected):
        load(PipelineConfig, TINY, overrides)


def test_a_sweep_without_an_all_tasks_trial_is_refused_before_anything_is_written(tmp_path):
    from raysys.errors import UserError
    from raysys.pipeline.driver import run_pipeline

    cfg = load_config(
        PipelineConfig,
        TINY,
        [
            f"run.storage_path={tmp_path}",
            "pipeline.tasks=[news_sentiment,price_direction]",
            "sweep.cocktails=[singletons]",
        ],
    )
    with pytest.raises(UserError, match="sweep.cocktails: no trial trains on all of"):
        run_pipeline(cfg)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("preset", ["embedded", "full"])
def test_quickstart_presets_are_valid_pipelines(preset):
    from raysys.pipeline.presets import preset_path

    path = preset_path(preset)
    assert path.read_text().startswith("#")
    cfg = load_config(PipelineConfig, path)
    assert cfg.sweep is not None and cfg.pipeline.synth_tasks == ["fomc_stance"]
    if preset == "full":  # the study's hyperparameters
        t, d = cfg.train, cfg.pipeline.dpo
        assert (t.lora.r, t.lora.alpha, t.learning_rate, t.batch_size) == (128, 256, 5e-5, 64)
        assert (d.lora.r, d.lora.alpha, d.dpo.beta) == (16, 32, 1.0)


def test_the_sft_adapter_loads_with_peft_and_changes_the_model(killed_and_resumed, tiny_model):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    sft = _stage_dirs(killed_and_resumed.run_dir)["sft"]
    cfg = json.loads((sft / "adapter" / "adapter_config.json").read_text())
    assert (cfg["r"], cfg["lora_alpha"]) == (8, 16)
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model), sft / "adapter"
    )
    ids = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        tuned = model(ids).logits
        with model.disable_adapter():
            plain = model(ids).logits
    assert not torch.allclose(tuned, plain)


def test_a_yaml_task_over_local_csv_trains_and_evaluates(ray_local, tmp_path, csv_task):
    """A user's own task (YAML over CSV files, no validation split) through the pipeline's
    eval -> SFT -> eval stages, with DPO and synthesis switched off."""
    from raysys.pipeline.driver import run_pipeline

    task_file = csv_task(
        "csv_tone",
        {"train": 96, "test": 16},
        "What is the tone?\n{input}\nEnd with 'Answer: <tone>'.",
    )
    cfg = load_config(
        PipelineConfig,
        TINY,
        [
            f"run.storage_path={tmp_path / 'runs'}",
            "run.run_id=csv",
            f"pipeline.tasks=[{task_file}]",
            f"pipeline.eval_tasks=[{task_file}]",
            "pipeline.synth_tasks=[]",
            "pipeline.train_size=96",
            "pipeline.stages.dpo=false",
            "pipeline.stages.synth=false",
            # the news_sentiment generator repeats its neutral boilerplate across splits (the
            # known leak the contamination check reports: README, Contamination check)
            "contamination.allow=true",
        ],
    )
    out = run_pipeline(cfg)
    by = {m["stage"]: m["results"][0] for m in out.summary["models"]}
    assert by["base"]["missing_rate"] == 1.0 and by["sft"]["missing_rate"] <= 0.2
    assert by["sft"]["task"] == "csv_tone" and by["sft"]["n"] == 16
    preds = pd.read_parquet(next(out.run_dir.glob("eval_sft-*")) / "predictions.parquet")
    stored = pd.read_parquet(out.run_dir / "tasks" / "csv_tone" / "test.parquet")
    assert sorted(preds["id"]) == sorted(stored["id"]) and len(stored) == 16
    assert all(i.startswith("csv_tone-test-") for i in stored["id"])  # ids from the text
    assert [s["stage"] for s in out.summary["stages"]] == ["data", "eval_base", "sft", "eval_sft"]


def test_raysys_report_rewrites_a_pipeline_report(killed_and_resumed, capsys):
    from raysys.cli import main

    k = killed_and_resumed
    (k.run_dir / "report.html").unlink()
    assert main(["report", str(k.run_dir)]) == 0
    out = capsys.readouterr().out
    assert "| task | base | sft | dpo | sft_r1 |" in out and "report.html" in out
    assert "Stages x tasks" in (k.run_dir / "report.html").read_text()
