"""Training with TRL, for real, on the tiny model and a real local Ray: one-worker runs in
one Ray actor (train.runner=auto), several workers on Ray Train; the fault drills run on
both runners where the two differ (how a failure is seen, who writes the checkpoint)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from ray.train import UserCallback

from raysys.cli import main
from raysys.config import TrainConfig, load_config
from raysys.tasks import build_splits, get_task
from raysys.train.guards import DataGuardError, TrainingDivergedError
from raysys.train.launch import PHASES, TrainingInterruptedError, read_reports, run_training
from tests.fixtures import REPO

ROWS = 32


def _sft_rows(n: int = ROWS) -> list[dict]:
    task = get_task("news_sentiment")
    rows = build_splits("news_sentiment", {"train": n}, 5)["train"]
    return [
        {
            "id": r["id"],
            "task": r["task"],
            "messages": task.messages(r) + [{"role": "assistant", "content": task.target(r)}],
        }
        for r in rows
    ]


def _dpo_rows(n: int = 16) -> list[dict]:
    task = get_task("news_sentiment")
    rows = build_splits("news_sentiment", {"train": n}, 6)["train"]
    out = []
    for r in rows:
        wrong = next(lab for lab in task.labels if lab != r["gold"])
        out.append(
            {
                "id": r["id"],
                "prompt": task.messages(r),
                "chosen": [{"role": "assistant", "content": task.target(r)}],
                "rejected": [{"role": "assistant", "content": task.target({**r, "gold": wrong})}],
            }
        )
    return out


@pytest.fixture(scope="module")
def sft_parquet(tmp_path_factory) -> str:
    p = tmp_path_factory.mktemp("data") / "sft.parquet"
    pd.DataFrame(_sft_rows()).to_parquet(p)
    return str(p)


@pytest.fixture(scope="module")
def dpo_parquet(tmp_path_factory) -> str:
    p = tmp_path_factory.mktemp("data") / "dpo.parquet"
    pd.DataFrame(_dpo_rows()).to_parquet(p)
    return str(p)


def _cfg(*overrides: str, method: str = "sft") -> TrainConfig:
    base = [
        "data.path=unused.parquet",
        "model.source=tiny-random",
        f"train.method={method}",
        "train.batch_size=8",
        "train.per_device_batch_size=4",
        "train.lora.r=8",
        "train.learning_rate=1e-3",
        "train.report_every_steps=2",
        "train.save_steps=2",
    ]
    return load_config(TrainConfig, None, [*base, *overrides])


def _train(cfg: TrainConfig, data: str, out: Path, tiny_model: str, faults=None) -> dict:
    return run_training(data, tiny_model, cfg.train, "float32", out, 0, faults)


def _metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def sft_one_worker(ray_local, tiny_model, sft_parquet, tmp_path_factory):
    out = tmp_path_factory.mktemp("sft1")
    final = _train(_cfg("train.epochs=1"), sft_parquet, out, tiny_model)
    return out, final


def test_sft_one_worker_reports_history_throughput_and_mfu(sft_one_worker):
    out, final = sft_one_worker
    m = _metrics(out)
    steps = ROWS // 8  # one epoch at effective batch 8
    assert final["step"] == steps
    assert [e["step"] for e in m["history"]] == list(range(1, steps + 1))
    assert all(math.isfinite(e["loss"]) for e in m["history"])
    f = m["final"]
    assert f["history_complete"] and f["replayed_steps"] == 0
    assert f["world_size"] == 1 and f["train_tokens"] > 0 and f["tokens_per_second"] > 0
    assert f["train_loss"] == pytest.approx(sum(e["loss"] for e in m["history"]) / steps)
    assert 0 < f["mfu"] < 1 and f["peak_flops_per_worker"] > 1e8
    assert f["flops_per_token"] > 4 * f["linear_params_frozen"]
    assert f["peak_memory_bytes"] > 0 and f["seconds_per_step_mean"] > 0
    assert set(f["versions"]) >= {"ray", "torch", "transformers", "peft", "trl"}
    # where the run's wall time went: every phase measured, none negative, and the phases
    # of the fit add up to its wall time
    phases = f["phases"]
    assert [p[0] for p in PHASES] == list(phases) and min(phases.values()) >= 0
    in_fit = sum(v for k, v in phases.items() if k not in ("preflight", "write_adapter"))
    assert in_fit == pytest.approx(f["wall_seconds"], abs=1.0)


def test_the_two_runners_train_the_same(sft_one_worker, tiny_model, sft_parquet, tmp_path):
    out, one = sft_one_worker
    assert one["runner"] == "actor"  # train.runner=auto with one worker
    two = _train(
        _cfg("train.epochs=1", "train.runner=ray_train"), sft_parquet, tmp_path, tiny_model
    )
    assert two["runner"] == "ray_train"
    losses = [[e["loss"] for e in _metrics(d)["history"]] for d in (out, tmp_path)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)  # same seed, data, trainer
    assert one["train_tokens"] == two["train_tokens"]
    # the same storage layout: checkpoints and report files where Ray Train puts them
    for d in (out, tmp_path):
        ckpts = sorted(p.name for p in (d / "ray_train" / "train").glob("checkpoint_0*"))
        assert ckpts == ["checkpoint_000002", "checkpoint_000004"]
        assert read_reports(str(d / "ray_train"), "train")[-1]["checkpoint"].endswith(ckpts[-1])


def test_sft_adapter_is_standard_peft_and_adapter_only(sft_one_worker, tiny_model):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out, _ = sft_one_worker
    files = {p.name for p in (out / "adapter").iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json"} <= files
    assert not files & {"optimizer.pt", "scheduler.pt", "trainer_state.json"}
    cfg = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert (cfg["r"], cfg["lora_alpha"]) == (8, 16)
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model), out / "adapter"
    )
    assert any("lora_B" in n and p.abs().sum() > 0 for n, p in model.named_parameters())
    # Ray Train storage holds the checkpoints: adapter + LoRA optimizer state, no base weights
    ckpts = sorted((out / "ray_train" / "train").glob("checkpoint_0*"))
    assert ckpts and len(ckpts) <= 2  # keep_checkpoints
    names = {p.name for p in (ckpts[-1] / "checkpoint").iterdir()}
    assert "adapter_model.safetensors" in names and "model.safetensors" not in names


def test_two_workers_same_effective_batch_and_data(
    sft_one_worker, tiny_model, sft_parquet, tmp_path
):
    _, one = sft_one_worker
    cfg = _cfg("train.num_workers=2", "train.cpus_per_worker=1", "train.epochs=1")
    assert cfg.train.grad_accum_steps == 1  # 4 per device x 2 workers = 8, as 4 x 2 accum on one
    two = _train(cfg, sft_parquet, tmp_path, tiny_model)
    assert two["world_size"] == 2
    assert two["step"] == one["step"] == ROWS // 8
    # every row seen exactly once in both layouts: the same token count over the epoch
    assert two["train_tokens"] == one["train_tokens"]
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


def test_dpo_after_sft_uses_the_sft_model_as_reference(
    sft_one_worker, tiny_model, dpo_parquet, tmp_path
):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    sft_out, _ = sft_one_worker
    cfg = _cfg("train.max_steps=2", f"train.init_adapter={sft_out / 'adapter'}", method="dpo")
    assert (cfg.train.lora.r, cfg.train.dpo.beta) == (8, 1.0)
    _train(cfg, dpo_parquet, tmp_path, tiny_model)
    hist = _metrics(tmp_path)["history"]
    # At step 1 the new LoRA is zero, so policy == reference. If the reference were
    # the raw base (not base + SFT), the loss would not be log 2.
    assert hist[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert "rewards/margins" in hist[0]
    # adapter/ = SFT (+) DPO as one LoRA on the raw base; equal to merging them in turn
    combined = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert combined["r"] == 8 + 8
    ids = torch.tensor([[1, 5, 9, 13, 17, 21]])
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    merged = PeftModel.from_pretrained(base, sft_out / "adapter").merge_and_unload()
    merged = PeftModel.from_pretrained(merged, tmp_path / "delta_adapter")
    fresh = AutoModelForCausalLM.from_pretrained(tiny_model)
    one = PeftModel.from_pretrained(fresh, tmp_path / "adapter")
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, one(ids).logits, atol=1e-4)


def test_interrupted_run_resumes_without_gaps_or_duplicates(
    ray_local, tiny_model, sft_parquet, tmp_path
):
    cfg = _cfg("train.max_steps=7", "train.save_steps=3", "train.report_every_steps=1")
    with pytest.raises(TrainingInterruptedError, match=r"checkpoint \(step 3\)"):
        _train(cfg, sft_parquet, tmp_path, tiny_model, {"crash_at_step": 6})
    assert not (tmp_path / "metrics.json").exists()
    first = {r["step"] for r in read_reports(str(tmp_path / "ray_train"), "train")}
    # Reports go through a one-slot queue, so the one of step 4 was taken before step 5's
    # went in; step 5's may have died with the worker.
    assert {1, 2, 3, 4} <= first <= {1, 2, 3, 4, 5}
    final = _train(cfg, sft_parquet, tmp_path, tiny_model)  # same storage: resumes
    m = _metrics(tmp_path)
    assert final["step"] == 7
    assert [e["step"] for e in m["history"]] == [1, 2, 3, 4, 5, 6, 7]  # no gap, no duplicate
    # the second attempt restarted from the checkpoint at step 3 and replayed 4 (and 5)
    assert m["final"]["steps_this_attempt"] == 4
    assert m["final"]["replayed_steps"] == len(first - {1, 2, 3}) >= 1
    # the newest keep_checkpoints (2) are kept, the older deleted
    ckpts = sorted(p.name for p in (tmp_path / "ray_train" / "train").glob("checkpoint_0*"))
    assert ckpts == ["checkpoint_000006", "checkpoint_000007"]


def test_a_finished_run_run_again_on_its_storage_trains_nothing_and_finishes(
    ray_local, tiny_model, sft_parquet, tmp_path
):
    # its newest checkpoint is its last step (a sweep trial retried after its training
    # finished resumes there): the result is that checkpoint, no step is trained again
    cfg = _cfg("train.epochs=1", "train.report_every_steps=1")  # 4 steps, as a sweep trial
    first = _train(cfg, sft_parquet, tmp_path, tiny_model)
    again = _train(cfg, sft_parquet, tmp_path, tiny_model)
    assert again["step"] == first["step"] == ROWS // 8
    assert again["train_loss"] == first["train_loss"]
    assert [e["step"] for e in _metrics(tmp_path)["history"]] == [1, 2, 3, 4]
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    # the callbacks (a sweep trial's Tune) still get the run's last report, once
    seen: list = []

    class Seen(UserCallback):
        def after_report(self, run_context, metrics, checkpoint):
            seen.append((metrics[0]["step"], checkpoint is not None))

    run_training(sft_parquet, tiny_model, cfg.train, "float32", tmp_path, 0, callbacks=[Seen()])
    assert seen == [(ROWS // 8, True)]


@pytest.mark.parametrize("runner", ["actor", "ray_train"])
def test_a_run_whose_max_steps_ends_inside_an_epoch_trains_no_extra_step_when_run_again(
    ray_local, tiny_model, sft_parquet, tmp_path, runner
):
    # 3 steps of an epoch's 4: HF resumed at step 3 would skip 3 batches and train a 4th
    cfg = _cfg("train.max_steps=3", "train.report_every_steps=1", f"train.runner={runner}")
    first = _train(cfg, sft_parquet, tmp_path, tiny_model)
    adapter = (tmp_path / "adapter" / "adapter_model.safetensors").read_bytes()
    again = _train(cfg, sft_parquet, tmp_path, tiny_model)
    assert again["step"] == first["step"] == 3
    assert [e["step"] for e in _metrics(tmp_path)["history"]] == [1, 2, 3]
    assert (tmp_path / "adapter" / "adapter_model.safetensors").read_bytes() == adapter
    # what the second fit did, not the first's: it trained nothing (`raysys estimate`
    # reads a trial's start-up from these), and no worker phase of the first fit
    final = _metrics(tmp_path)["final"]
    assert first["steps_this_attempt"] == 3 and final["steps_this_attempt"] == 0
    assert "first_step" not in final["phases"] and final["phases"]["write_adapter"] >= 0


def _set_writable(path: Path, writable: bool) -> None:
    """Root ignores permission bits; an immutable folder refuses root too."""
    import os
    import subprocess

    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i" if writable else "+i", str(path)], check=True)
    else:
        path.chmod(0o755 if writable else 0o555)


RUNNERS = pytest.mark.parametrize("runner", ["actor", "ray_train"])


@RUNNERS
def test_storage_unwritable_mid_run_is_a_clear_error_and_the_checkpoint_survives(
    ray_local, tiny_model, sft_parquet, tmp_path, runner
):
    import threading
    import time

    cfg = _cfg(
        "train.max_steps=6",
        "train.save_steps=2",
        "train.report_every_steps=1",
        f"train.runner={runner}",
    )
    ckpts = tmp_path / "ray_train" / "train"
    box: dict[str, BaseException] = {}

    def run() -> None:
        try:
            _train(cfg, sft_parquet, tmp_path, tiny_model, {"hold_at_step": 3})
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            box["error"] = e

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 240

    def registered() -> bool:  # the checkpoint of step 2 is recorded
        reports = read_reports(str(tmp_path / "ray_train"), "train")
        if runner == "ray_train" and not (ckpts / "checkpoint_manager_snapshot.json").exists():
            return False  # and Ray Train's own record of it is written
        return any(r["step"] == 2 and r.get("checkpoint") for r in reports)

    while not ((tmp_path / "faults" / "held-at-3").exists() and registered()):
        assert time.monotonic() < deadline, "training never reached the hold"
        time.sleep(0.2)
    _set_writable(ckpts, False)  # the checkpoint of step 4 has nowhere to go
    try:
        (tmp_path / "faults" / "release").touch()
        worker.join(240)
    finally:
        _set_writable(ckpts, True)
    err = box.get("error")
    assert isinstance(err, TrainingInterruptedError), repr(err)
    msg = str(err)
    assert "\n" not in msg
    assert "storage" in msg and "not writable" in msg, msg
    assert "last good checkpoint (step 2)" in msg and "run it again" in msg, msg
    assert [c.name for c in sorted(ckpts.glob("checkpoint_0*"))] == ["checkpoint_000002"]
    assert (ckpts / "checkpoint_000002" / "checkpoint" / "adapter_config.json").is_file()
    assert not (tmp_path / "metrics.json").exists()
    # storage fixed: the same run resumes from step 2 and finishes
    final = _train(cfg, sft_parquet, tmp_path, tiny_model, {"hold_at_step": 3})
    assert final["step"] == 6
    assert [e["step"] for e in _metrics(tmp_path)["history"]] == [1, 2, 3, 4, 5, 6]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(
    ray_local, tiny_model, sft_parquet, tmp_path
):
    cfg = _cfg("train.max_steps=4")
    with pytest.raises(
        TrainingDivergedError, match=r"loss is nan at step 3.*checkpoint \(step 2\)"
    ):
        _train(cfg, sft_parquet, tmp_path, tiny_model, {"nan_at_step": 3})
    ckpts = sorted((tmp_path / "ray_train" / "train").glob("checkpoint_0*"))
    assert [c.name for c in ckpts] == ["checkpoint_000002"]


def test_empty_dataset_is_refused_before_training(ray_local, tiny_model, tmp_path):
    empty = tmp_path / "empty.parquet"
    pd.DataFrame(_sft_rows(1)).iloc[:0].to_parquet(empty)
    with pytest.raises(DataGuardError, match="holds no training rows"):
        _train(_cfg(), str(empty), tmp_path / "out", tiny_model)
    assert not (tmp_path / "out").exists()


def test_missing_eos_is_refused(ray_local, tiny_model, sft_parquet, tmp_path):
    import shutil

    from transformers import AutoTokenizer

    model = tmp_path / "no-eos"
    shutil.copytree(tiny_model, model)
    tok = AutoTokenizer.from_pretrained(model)
    # a template that never closes the assistant turn
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    tok.save_pretrained(model)
    with pytest.raises(DataGuardError, match="no EOS"):
        run_training(sft_parquet, str(model), _cfg().train, "float32", tmp_path / "o", 0)


def test_truncation_that_cuts_eos_is_refused(tiny_model, sft_parquet, tmp_path):
    with pytest.raises(DataGuardError, match="train.max_seq_length=16"):
        _train(_cfg("train.max_seq_length=16"), sft_parquet, tmp_path, tiny_model)


def test_wrong_columns_for_the_method(tiny_model, sft_parquet, tmp_path):
    with pytest.raises(DataGuardError, match="dpo rows need column"):
        _train(_cfg(method="dpo"), sft_parquet, tmp_path, tiny_model)


def test_cli_train_cocktail_then_rerun_skips(ray_local, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    args = [
        "train",
        "configs/train_sft.yaml",
        "model.source=tiny-random",
        f"run.storage_path={tmp_path}",
        "run.run_id=cli",
        "data.train_size=16",
        "train.batch_size=8",
        "train.per_device_batch_size=8",
        "train.max_steps=2",
        "train.lora.r=4",
        "model.dtype=float32",
        # a URI goes through pyarrow's filesystems, as s3:// or gs:// would
        f"train.checkpoint_storage=file://{tmp_path}/ckpt",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "SFT on 1 worker(s)" in out and "tokens/s" in out and "MFU" in out
    run = tmp_path / "train" / "cli"
    assert (run / "config.yaml").is_file() and (run / "train" / "adapter").is_dir()
    # the checkpoint storage is scoped by run name and id: another run never resumes here
    assert (tmp_path / "ckpt" / "train" / "cli" / "train" / "checkpoint_000002").is_dir()
    assert read_reports(f"file://{tmp_path}/ckpt/train/cli", "train")
    assert main(args) == 0  # finished: skipped, same summary
    assert "steps 2" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, expected",
    [
        (["data.path=/nonexistent.parquet"], "data.path: /nonexistent.parquet not found"),
        (["data.path=x.parquet", "train.method=dpo", "train.packing=true"], "sft only"),
        (["data.path=x.parquet", "train.lora.r=0"], "train.lora.r"),
        (
            ["data.path=x.parquet", "train.runner=actor", "train.num_workers=2"],
            "set train.runner=ray_train (or auto) for several workers",
        ),
    ],
)
def test_cli_train_bad_input_exits_2(tmp_path, capsys, args, expected):
    assert main(["train", f"run.storage_path={tmp_path}", "model.source=tiny-random", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("raysys: error:") and expected in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())


@RUNNERS
def test_max_failures_restarts_the_worker_from_the_checkpoint(
    ray_local, tiny_model, sft_parquet, tmp_path, runner
):
    # Reporting every step makes the restart point certain: the step-3 report can only
    # enter the one-slot queue once the controller took step 2's (with its checkpoint).
    cfg = _cfg(
        "train.max_steps=5",
        "train.save_steps=2",
        "train.report_every_steps=1",
        "train.max_failures=1",
        f"train.runner={runner}",
    )
    seen_file = tmp_path / "seen.txt"

    class Seen(UserCallback):  # Ray Train calls it in its controller: a file, not a list
        def after_report(self, run_context, metrics, checkpoint):
            with seen_file.open("a") as f:
                f.write(f"{metrics[0]['step']}\n")

    final = run_training(
        sft_parquet,
        tiny_model,
        cfg.train,
        "float32",
        tmp_path,
        0,
        {"crash_at_step": 4},
        callbacks=[Seen()],
    )
    assert final["runner"] == runner
    m = _metrics(tmp_path)
    assert final["step"] == 5 and final["steps_this_attempt"] == 3  # restarted from step 2
    assert [e["step"] for e in m["history"]] == [1, 2, 3, 4, 5]
    assert (tmp_path / "faults" / "crashed-at-4").exists()
    # the callbacks (a sweep's Tune) got every report the run registered, once, in order:
    # also the one the dead process wrote but had not handed over yet (step 3's)
    seen = [int(line) for line in seen_file.read_text().split()]
    assert seen == [r["step"] for r in read_reports(str(tmp_path / "ray_train"), "train")]
    assert seen[:3] == [1, 2, 3] and seen[-1] == 5
