"""The actor runner's storage side (`ActorSession`): checkpoints where Ray Train puts them,
registered by their report, the newest `keep` kept, resume from the newest whole one. No
Ray started: the session writes through pyarrow's filesystems like the actor does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raysys.train.actor import ActorSession, registered_checkpoints
from raysys.train.reports import read_reports


def _hf_checkpoint(root: Path, step: int) -> Path:
    d = root / f"checkpoint-{step}"
    d.mkdir(parents=True)
    (d / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (d / "adapter_model.safetensors").write_bytes(b"w" * step)
    return d


@pytest.fixture(params=["path", "uri"])
def storage(request, tmp_path) -> str:
    """A plain directory, and the same as a file:// URI (pyarrow's filesystems, as s3://)."""
    d = tmp_path / "ray_train"
    return str(d) if request.param == "path" else f"file://{d}"


def _folder(storage: str) -> Path:
    return Path(storage.removeprefix("file://")) / "train"


def test_checkpoints_are_registered_by_their_report_and_the_newest_kept(storage, tmp_path):
    outbox: list = []
    s = ActorSession(storage, "train", 2, outbox)
    for step in (1, 2, 3, 4):
        hf = _hf_checkpoint(tmp_path / "hf", step) if step % 2 == 0 else None
        s.report({"step": step, "loss": 1.0 / step, "history": [{"step": step}]}, hf, step)
    folder = _folder(storage)
    assert sorted(p.name for p in folder.glob("checkpoint_*")) == [
        "checkpoint_000002",
        "checkpoint_000004",
    ]
    assert (folder / "checkpoint_000004" / "checkpoint" / "adapter_model.safetensors").is_file()
    reports = read_reports(storage, "train")
    assert [r["step"] for r in reports] == [1, 2, 3, 4]
    assert [bool(r["checkpoint"]) for r in reports] == [False, True, False, True]
    assert [m["step"] for m, _ in outbox] == [1, 2, 3, 4]
    assert s.last[0]["step"] == 4 and s.last[1].endswith("checkpoint_000004")
    # a third checkpoint pushes the oldest out (keep_checkpoints=2)
    s.report({"step": 6, "history": []}, _hf_checkpoint(tmp_path / "hf", 6), 6)
    assert sorted(p.name for p in folder.glob("checkpoint_*")) == [
        "checkpoint_000004",
        "checkpoint_000006",
    ]
    assert [Path(p).name for p in registered_checkpoints(read_reports(storage, "train"))] == [
        "checkpoint_000002",  # registered once, deleted since: restore skips it
        "checkpoint_000004",
        "checkpoint_000006",
    ]


def test_restore_takes_the_newest_whole_registered_checkpoint(storage, tmp_path):
    s = ActorSession(storage, "train", 3, [])
    for step in (2, 4):
        s.report({"step": step, "history": []}, _hf_checkpoint(tmp_path / "hf", step), step)
    # step 6 was uploaded but its report never written (the process died between the two)
    s2 = ActorSession(storage, "train", 3, [])
    orphan = _folder(storage) / "checkpoint_000006" / "checkpoint"
    orphan.mkdir(parents=True)
    (orphan / "trainer_state.json").write_text(json.dumps({"global_step": 6}))
    # and the newest registered one lost its files (a half-deleted folder)
    (_folder(storage) / "checkpoint_000004" / "checkpoint" / "trainer_state.json").unlink()
    out = tmp_path / "hf_out"
    out.mkdir()
    resumed = s2.restore(str(out))
    assert resumed == str(out / "checkpoint-2")
    assert (out / "checkpoint-2" / "adapter_model.safetensors").read_bytes() == b"ww"


def test_nothing_registered_means_a_fresh_start(storage, tmp_path):
    out = tmp_path / "hf_out"
    out.mkdir()
    assert ActorSession(storage, "train", 2, []).restore(str(out)) is None
    assert registered_checkpoints(read_reports(storage, "train")) == []


def test_a_run_with_no_step_left_returns_its_newest_report_and_checkpoint(storage, tmp_path):
    """Resumed from a checkpoint of its last step, a run reports nothing new: it returns
    what the earlier attempt reported last, as Ray Train's result does."""
    s = ActorSession(storage, "train", 2, [])
    s.report({"step": 2, "history": [], "train_loss": 0.5}, _hf_checkpoint(tmp_path / "hf", 2), 2)
    again = ActorSession(storage, "train", 2, [])
    assert again.last[0]["train_loss"] == 0.5 and again.last[1].endswith("checkpoint_000002")


def test_checkpoints_are_ordered_by_step_not_by_their_writers_clocks():
    """Report files sort by the writing node's clock; a restarted actor on a node whose
    clock is behind must not make an older checkpoint look newer."""
    reports = [
        {"checkpoint": "/s/train/checkpoint_000004"},
        {"checkpoint": None},
        {"checkpoint": "/s/train/checkpoint_000002"},  # written later by a skewed clock
    ]
    assert registered_checkpoints(reports) == [
        "/s/train/checkpoint_000002",
        "/s/train/checkpoint_000004",
    ]


def test_a_torn_rewrite_of_a_registered_checkpoint_is_never_resumed_from(
    storage, tmp_path, monkeypatch
):
    """A run resumed from an older checkpoint writes a registered step's folder again; a
    crash in that copy leaves no trainer_state.json, so the folder does not count as
    whole and the resume falls back to the older checkpoint."""
    import pyarrow.fs

    s = ActorSession(storage, "train", 3, None)
    for step in (2, 4):
        s.report({"step": step, "history": []}, _hf_checkpoint(tmp_path / "hf", step), step)
    real = pyarrow.fs.copy_files

    def crash_on_folders(src, dst, **kw):
        """A folder's files go up in parallel, in no set order: here the small trainer
        state lands, then the process dies before the weights."""
        if Path(src).is_dir():
            for f in Path(src).glob("trainer_state.json"):
                real(str(f), f"{dst}/{f.name}", **kw)
            raise OSError("the process died mid-upload")
        return real(src, dst, **kw)

    monkeypatch.setattr(pyarrow.fs, "copy_files", crash_on_folders)
    hf = _hf_checkpoint(tmp_path / "hf2", 4)
    with pytest.raises(OSError, match="mid-upload"):
        ActorSession(storage, "train", 3, None).report({"step": 4, "history": []}, hf, 4)
    monkeypatch.undo()
    torn = _folder(storage) / "checkpoint_000004" / "checkpoint"
    assert not (torn / "trainer_state.json").exists()
    assert not list(hf.parent.glob(".upload-*"))  # the hard-linked staging folder is gone
    out = tmp_path / "hf_out"
    out.mkdir()
    assert ActorSession(storage, "train", 3, None).restore(str(out)) == str(out / "checkpoint-2")


def test_reports_a_dead_actor_never_handed_over_reach_the_callbacks_once(storage, tmp_path):
    from raysys.train.actor import _Delivery
    from raysys.train.reports import count_reports, filesystem_of

    earlier = ActorSession(storage, "train", 3, None)  # an earlier fit of the same run
    earlier.report({"step": 1, "history": [{"step": 1}]}, None, 1)
    seen: list = []

    class Seen:
        def after_report(self, run_context, metrics, checkpoint):
            seen.append((metrics[0]["step"], metrics[0]["history"], checkpoint))

    before = count_reports(storage, "train")
    deliver = _Delivery([Seen()], filesystem_of(storage)[0], storage, "train", before)
    outbox: list = []
    s = ActorSession(storage, "train", 3, outbox)
    for step in (2, 3, 4):
        hf = _hf_checkpoint(tmp_path / "hf", step) if step == 4 else None
        s.report({"step": step, "history": [{"step": step}]}, hf, step)
    deliver(*outbox[0])  # drained before the actor died; steps 3 and 4 were not
    deliver.catch_up()
    assert [step for step, _, _ in seen] == [2, 3, 4]
    assert seen[1][1] == [{"step": 3}]  # with its per-step history, as the actor sends it
    assert seen[2][2].path.endswith("checkpoint_000004") and seen[1][2] is None
    deliver.catch_up()  # nothing new: nothing twice
    assert len(seen) == 3


def test_a_failed_actor_is_explained_in_one_line():
    from ray.exceptions import RayActorError

    from raysys.train.actor import failure_line

    died = RayActorError(
        None,
        "The actor died unexpectedly before finishing this task.\n\tclass_name: TrainActor\n"
        "The actor is dead because its worker process has died. Worker exit type: "
        "SYSTEM_ERROR Worker exit detail: Worker unexpectedly exits with a connection error "
        "code 2. End of file. There are some potential root causes. (1) OOM killer",
    )
    assert failure_line(died) == (
        "its process died: Worker exit detail: Worker unexpectedly exits with a connection "
        "error code 2. End of file"
    )
    oom = RayActorError(None, "Task was killed due to the node running low on memory.\nx")
    assert failure_line(oom) == "its process died: Ray killed it, the node ran low on memory"
    assert failure_line(ValueError("boom\ntraceback")) == "boom"
    # credentials in a URI are redacted, also where the line is clipped (after redacting)
    secret = "s3://AKIAEXAMPLE:" + "s" * 190 + "@bucket/runs/x"
    leaky = RayActorError(None, f"The actor is dead because reading {secret} failed.")
    assert "AKIAEXAMPLE" not in failure_line(leaky) and "sss" not in failure_line(leaky)
    assert "AKIAEXAMPLE" not in failure_line(OSError(f"{secret} refused"))
