"""MLflow for a sweep (`sweep.mlflow.tracking_uri`): a parent run per sweep and one run
per trial nested under it (tag `mlflow.parentRunId`), all in `sweep.mlflow.experiment`.

- The parent run, named `<run.name>/<run_id>`: the sweep's settings as params, the base
  model's test scores (`base/test_main/<task>`), and as artifacts `report.html`,
  `report.md`, `results.csv`, `sweep.json` and `config.yaml`. FINISHED when every trial
  finished; FAILED when some errored (a `--resume` sets it running again).
- A trial's run, named by the trial id: its parameters as flat params (`cocktail`,
  `share/<task>`, `general`, `math`, `fraction`, `seed`, `learning_rate`, `lora_r`, ...),
  Ray Train's reports at their training step (`loss`, `grad_norm`, `learning_rate`, ...),
  its scores (`val_main/<task>`, `test_main/<task>` and their means) and its PEFT adapter
  folder (artifact path `adapter`).

`TrialRuns` (a Ray Tune callback: Ray's `MLflowLoggerCallback` with those params, the
parent tag, training steps as steps, and a restarted trial continuing its own run) writes
the trial runs while Tune runs; `SweepTracking` (the driver) opens the parent run before
Tune and, after the one test pass, logs the test scores, any adapter the callback could
not see, and the report. `<sweep_dir>/mlflow.json` records the run ids, so a `--resume`
continues the same parent and trial runs instead of adding new ones.

`mlflow` is imported only by this module, and this module only when tracking is on.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from pathlib import Path
from typing import Any

from ray.air.constants import TRAINING_ITERATION
from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.tune.result import AUTO_RESULT_KEYS

from raysys.config import SweepConfig
from raysys.errors import UserError
from raysys.io import write_json
from raysys.sweep.grid import tune_trial_id
from raysys.sweep.trial import FINAL_METRIC, adapter_path, trial_path

log = logging.getLogger(__name__)

RECORD = "mlflow.json"  # in the sweep directory: the experiment and run ids
PARENT_TAG = "mlflow.parentRunId"  # what nests a run under another in MLflow's UI
TRIAL_TAG = "raysys.trial_id"
ADAPTER_TAG = "raysys.adapter_logged"
ADAPTER_PATH = "adapter"  # the adapter's artifact folder in a trial's run
REPORT_FILES = ("report.html", "report.md", "results.csv", "sweep.json", "config.yaml")
# Tune's bookkeeping, and Train's keys that are not a curve (the step is the x axis)
_NOT_METRICS = {*AUTO_RESULT_KEYS, "done", "trial_id", "experiment_tag", "step", "max_steps"}


def require_mlflow() -> None:
    """The MLflow client is importable, else the error that names the extra."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise UserError(
            "sweep.mlflow.tracking_uri needs MLflow: pip install 'raysys[mlflow]', or unset it"
        ) from None


def probe_server(tracking_uri: str) -> None:
    """A tracking server answers, checked before any work with one request, no retry
    (MLflow's client otherwise retries an unreachable server for about 4 minutes, and the
    sweep would fail after Ray started and files were written). Non-HTTP URIs (a local
    store) are not probed: that would create the store."""
    from mlflow import MlflowClient

    from raysys.uris import redact

    if not tracking_uri.startswith(("http://", "https://")):
        return
    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    saved = {k: os.environ.get(k) for k in quick}
    os.environ.update(quick)  # MLflow reads them per request
    try:
        MlflowClient(tracking_uri=tracking_uri).search_experiments(max_results=1)
    except _tracking_errors() as e:
        raise UserError(
            f"sweep.mlflow.tracking_uri: no MLflow server answers at {redact(tracking_uri)} "
            f"({_why(e)}); start it (mlflow server ...), or unset sweep.mlflow.tracking_uri"
        ) from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _why(e: BaseException) -> str:
    """The root of a failed request in a few words (MLflow's message repeats the URL and
    urllib3's pool details)."""
    from raysys.uris import redact

    text = str(e)
    if m := re.search(r"\[Errno -?\d+\] [^'\")\]]+", text):
        return m.group(0).strip()
    return redact(text.splitlines()[0] if text else type(e).__name__)[:160]


def _quiet() -> None:
    """MLflow's client prints two "View run ... at" lines to stdout per ended run (two
    per trial): the sweep logs its own one line instead. An explicit setting wins."""
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def _tracking_errors() -> tuple[type[BaseException], ...]:
    """What a tracking call raises when the server fails or is unreachable (requests'
    errors are OSErrors): logged as a warning, never the end of a sweep."""
    from mlflow.exceptions import MlflowException

    return (MlflowException, OSError)


# --------------------------------------------------------------------------- trial runs


def trial_params(p: dict[str, Any]) -> dict[str, str]:
    """A trial's parameters (`Trial.params()`) as flat, readable MLflow params: each
    task's share of the final training mixture (`share/<task>`), and the regulariser
    shares, fraction, seed, learning rate and LoRA rank under the results table's names."""
    comps = [(str(t), float(w)) for t, w in p["components"]]
    total = sum(w for _, w in comps) or 1.0
    rest = 1.0 - p["general"] - p["math"]  # the tasks' part of the final mixture
    out: dict[str, Any] = {
        "trial_id": p["trial_id"],
        "cocktail": p["cocktail"],
        "cocktail_kind": p["cocktail_kind"],
        "tasks": ",".join(t for t, _ in comps),
        **{f"share/{t}": round(w / total * rest, 6) for t, w in comps},
    }
    out |= {k: p[k] for k in ("general", "math", "fraction", "seed", "learning_rate", "lora_r")}
    return {k: str(v) for k, v in out.items()}


def result_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The numbers of a Tune result worth a curve: Train's reports (loss, grad_norm,
    learning_rate, ...) and a finished trial's scores, without Tune's bookkeeping. The
    finished trial's `loss` is its mean training loss (ASHA's metric), not a step's: it
    is logged as `train_loss` only."""
    final = FINAL_METRIC in result
    out = {}
    for key, value in result.items():
        if key in _NOT_METRICS or (final and key == "loss") or isinstance(value, bool):
            continue
        if isinstance(value, int | float) and math.isfinite(value):
            out[key] = float(value)
    return out


class TrialRuns(MLflowLoggerCallback):
    """Ray's MLflow callback, one run per trial nested under the sweep's parent run.

    Differs from Ray's in what an operator reads: flat params instead of the trial
    config's nested dict; training steps (not Tune iterations) as steps, each logged once
    even where Train replays steps after a restart; a trial that starts again (a retried
    error, a resumed sweep) continues its run; the adapter folder, not Tune's trial
    folder, as the artifact. The driver binds the parent run (`bind`) before the Tuner is
    made: a restored Tuner brings back this object as it was pickled then."""

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        super().__init__(tracking_uri=tracking_uri, experiment_name=experiment)
        self.parent_run_id: str | None = None
        self.sweep_dir: str | None = None

    def bind(self, parent_run_id: str, sweep_dir: Path) -> None:
        self.parent_run_id, self.sweep_dir = parent_run_id, str(sweep_dir)

    def setup(self, *args: Any, **kwargs: Any) -> None:
        from mlflow import MlflowClient

        if self.parent_run_id is None:
            raise RuntimeError("TrialRuns: bind() the sweep's parent run before Tune starts")
        _quiet()
        super().setup(*args, **kwargs)  # the experiment, found or created
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        self._last_step: dict[Any, int] = {}  # trial -> the last training step logged
        self._done: set[Any] = set()  # trials whose final scores are logged
        self._adapter: set[Any] = set()  # trials whose adapter is logged

    def log_trial_start(self, trial: Any) -> None:
        try:
            self._start(trial)
        except _tracking_errors() as e:
            log.warning(
                "MLflow: %s: its run could not be started: %s", tune_trial_id(trial.config), e
            )

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        run_id = self._trial_runs.get(trial)
        if run_id is None:
            return
        step = int(result.get("step") or result[TRAINING_ITERATION])
        if FINAL_METRIC in result:
            if trial in self._done:
                return  # a finished trial reporting again after the driver restarted
            self._done.add(trial)
        elif step <= self._last_step.get(trial, -1):
            return  # a step replayed after a restart from a checkpoint: logged already
        else:
            self._last_step[trial] = step
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in result_metrics(result).items()]
        try:
            self.client.log_batch(run_id, metrics=metrics)
        except _tracking_errors() as e:
            log.warning(
                "MLflow: %s: metrics at step %d not logged: %s",
                tune_trial_id(trial.config),
                step,
                e,
            )

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        run_id = self._trial_runs.get(trial)
        if run_id is None:
            return
        try:
            adapter = adapter_path(trial_path(self.sweep_dir, tune_trial_id(trial.config)))
            if not failed and trial not in self._adapter:
                if log_adapter(self.client, run_id, adapter):
                    self._adapter.add(trial)
            self.client.set_terminated(run_id, "FAILED" if failed else "FINISHED")
        except _tracking_errors() as e:
            log.warning(
                "MLflow: %s: its run could not be ended: %s", tune_trial_id(trial.config), e
            )

    def _start(self, trial: Any) -> None:
        from mlflow.entities import Param

        client, tid = self.client, tune_trial_id(trial.config)
        run_id = self._trial_runs.get(trial)
        if run_id is None:
            run = find_trial_run(client, self.mlflow_util.experiment_id, self.parent_run_id, tid)
            if run is None:
                tags = {**self.tags, PARENT_TAG: self.parent_run_id, TRIAL_TAG: tid}
                run = client.create_run(self.mlflow_util.experiment_id, run_name=tid, tags=tags)
                params = trial_params(trial.config["trial"])
                client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
            else:  # a resumed sweep: this trial's run from before the driver restarted
                self._resumed(trial, run)
            run_id = self._trial_runs[trial] = run.info.run_id
        client.update_run(run_id, status="RUNNING")

    def _resumed(self, trial: Any, run: Any) -> None:
        """What the run of a trial holds already, so that nothing is logged twice."""
        self._last_step[trial] = last_step(self.client, run.info.run_id)
        if FINAL_METRIC in run.data.metrics or "trial_seconds" in run.data.metrics:
            self._done.add(trial)
        if run.data.tags.get(ADAPTER_TAG) == "true":
            self._adapter.add(trial)


def find_trial_run(client: Any, experiment_id: str, parent_run_id: str, trial_id: str) -> Any:
    """The run of `trial_id` under the parent run, if one was started before."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}' "
        f"AND tags.`{TRIAL_TAG}` = '{trial_id}'",  # ids: [A-Za-z0-9_-] only
        max_results=1,
    )
    return runs[0] if runs else None


def last_step(client: Any, run_id: str) -> int:
    """The last training step a run holds (-1: none); what a restarted trial's replayed
    steps are checked against."""
    return max(logged_steps(client, run_id), default=-1)


def logged_steps(client: Any, run_id: str) -> set[int]:
    """Every training step a run holds a loss for."""
    return {int(m.step) for m in client.get_metric_history(run_id, "loss")}


def log_adapter(client: Any, run_id: str, adapter: Path) -> bool:
    """The trial's PEFT adapter folder (adapter_config.json and weights) as the run's
    `adapter` artifact, once; False when the folder is not on this machine (an object
    store's trial: the driver logs it after the test pass, which fetched it)."""
    if not (adapter / "adapter_config.json").is_file():
        return False
    client.log_artifacts(run_id, str(adapter), artifact_path=ADAPTER_PATH)
    client.set_tag(run_id, ADAPTER_TAG, "true")
    return True


# --------------------------------------------------------------------------- the sweep


def _experiment_id(client: Any, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    return exp.experiment_id if exp is not None else client.create_experiment(name)


class SweepTracking:
    """The sweep's parent run, opened by the driver before Tune and closed after the
    report: see the module's docstring for what it holds."""

    def __init__(self, cfg: SweepConfig, sweep_dir: Path, client: Any, record: dict) -> None:
        self.cfg, self.sweep_dir, self.client, self.record = cfg, sweep_dir, client, record

    @property
    def parent_run_id(self) -> str:
        return self.record["parent_run_id"]

    @classmethod
    def open(cls, cfg: SweepConfig, sweep_dir: Path, callbacks: list[Any]) -> SweepTracking:
        """The parent run of this sweep: the one `mlflow.json` records (a resumed sweep),
        else a new one; the trial callback is bound to it."""
        from mlflow import MlflowClient

        from raysys.uris import redact

        _quiet()
        ml = cfg.sweep.mlflow
        client = MlflowClient(tracking_uri=ml.tracking_uri)
        try:
            exp_id = _experiment_id(client, ml.experiment)
            record = _read_record(sweep_dir / RECORD)
            parent = _usable_parent(client, record.get("parent_run_id"), exp_id)
            if parent is None:
                parent = _start_parent(client, cfg, sweep_dir, exp_id)
        except _tracking_errors() as e:
            raise UserError(
                f"sweep.mlflow.tracking_uri: MLflow at {redact(str(ml.tracking_uri))} did not "
                f"answer ({type(e).__name__}: {redact(str(e))[:200]}); start the server, or "
                "unset sweep.mlflow.tracking_uri"
            ) from None
        record = {
            "tracking_uri": redact(str(ml.tracking_uri)),
            "experiment": ml.experiment,
            "experiment_id": exp_id,
            "parent_run_id": parent,
            "trials": record.get("trials", {}),
        }
        out = cls(cfg, sweep_dir, client, record)
        out._save()
        for cb in callbacks:
            if isinstance(cb, TrialRuns):
                cb.bind(parent, sweep_dir)
        log.info("MLflow: sweep run %s", run_link(record["tracking_uri"], exp_id, parent))
        return out

    def finish(self, finished: dict[str, dict[str, Any]], results: Any, errored: list[str]) -> None:
        """After the report: every finished trial's scores (and adapter, if the callback
        could not log it), the base model's scores and the report on the parent run, the
        run ids in `mlflow.json`; the parent FINISHED, or FAILED when trials errored."""
        try:
            runs = self._trial_runs()
            for tid, res in sorted(finished.items()):
                if tid in runs:
                    self._finish_trial(runs[tid], tid, res, results)
            parent = self.client.get_run(self.parent_run_id)
            self._log_scores(parent, _scores(results, "base", prefix="base/"), 0)
            for name in REPORT_FILES:
                if (self.sweep_dir / name).is_file():
                    self.client.log_artifact(self.parent_run_id, str(self.sweep_dir / name))
            self.record["trials"] = {tid: r.info.run_id for tid, r in sorted(runs.items())}
            self._save()
            self.close("FAILED" if errored else "FINISHED")
        except _tracking_errors() as e:
            log.warning("MLflow: the sweep's scores and report were not all logged: %s", e)

    def close(self, status: str) -> None:
        try:
            self.client.set_terminated(self.parent_run_id, status)
        except _tracking_errors() as e:
            log.warning("MLflow: the sweep run could not be ended: %s", e)

    def _finish_trial(self, run: Any, tid: str, res: dict[str, Any], results: Any) -> None:
        self._backfill(run, Path(res["adapter"]).parent / "metrics.json")
        step = int(res.get("train", {}).get("step") or 0)
        self._log_scores(run, _scores(results, tid), step)
        if run.data.tags.get(ADAPTER_TAG) != "true":
            log_adapter(self.client, run.info.run_id, Path(res["adapter"]))

    def _backfill(self, run: Any, train_metrics: Path) -> None:
        """Training steps the run lacks at its end: a trial's reports go unlogged when the
        driver dies before Tune hands them to the callback, and a resumed trial does not
        report them again (it restarts from its checkpoint; one resumed at its last step
        reports only that step, leaving a gap before it). The trial's own
        `train/metrics.json` holds every step."""
        from mlflow.entities import Metric

        from raysys.io import read_json

        if not train_metrics.is_file():
            return
        logged = logged_steps(self.client, run.info.run_id)
        now = int(time.time() * 1000)
        history = read_json(train_metrics, "training metrics").get("history", [])
        metrics = [
            Metric(k, v, now, int(h["step"]))
            for h in history
            if "step" in h and int(h["step"]) not in logged
            for k, v in result_metrics(h).items()
        ]
        for i in range(0, len(metrics), 1000):  # MLflow's limit per batch
            self.client.log_batch(run.info.run_id, metrics=metrics[i : i + 1000])

    def _log_scores(self, run: Any, scores: dict[str, float], step: int) -> None:
        """`scores` into `run`, leaving out what it holds already (Tune's last report
        logged the trial-time validation scores; a resumed sweep finishes twice)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        new = {k: v for k, v in scores.items() if run.data.metrics.get(k) != v}
        if new:
            metrics = [Metric(k, v, now, step) for k, v in new.items()]
            self.client.log_batch(run.info.run_id, metrics=metrics)

    def _trial_runs(self) -> dict[str, Any]:
        """Every trial run under the parent, by trial id."""
        out: dict[str, Any] = {}
        token = None
        while True:
            page = self.client.search_runs(
                [self.record["experiment_id"]],
                filter_string=f"tags.`{PARENT_TAG}` = '{self.parent_run_id}'",
                max_results=1000,
                page_token=token,
            )
            for run in page:
                if TRIAL_TAG in run.data.tags:
                    out[run.data.tags[TRIAL_TAG]] = run
            token = page.token
            if not token:
                return out

    def _save(self) -> None:
        from raysys.runs import RunDir

        write_json(self.sweep_dir / RECORD, self.record)
        RunDir.at(self.sweep_dir).keep(RECORD)


def run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """Where the MLflow UI shows a run (a tracking server), else the run's id and store."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    return f"{run_id} (experiment {experiment_id} in {tracking_uri})"


def _scores(results: Any, trial_id: str, prefix: str = "") -> dict[str, float]:
    """`val_main/<task>`, `test_main/<task>` and their means for one trial (or the base
    model) from the results table; NaN (no score) is left out."""
    rows = results[results["trial_id"] == trial_id]
    out: dict[str, float] = {}
    for col in ("val_main", "test_main"):
        vals = {r["task"]: r[col] for r in rows.to_dict("records") if _finite(r.get(col))}
        out |= {f"{prefix}{col}/{t}": float(v) for t, v in vals.items()}
        if vals:
            out[f"{prefix}{col}_mean"] = float(sum(vals.values()) / len(vals))
    return out


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _read_record(path: Path) -> dict[str, Any]:
    from raysys.io import read_json

    return read_json(path, "MLflow record") if path.is_file() else {}


def _usable_parent(client: Any, run_id: str | None, experiment_id: str) -> str | None:
    """The recorded parent run, set running again, if it still exists in the experiment."""
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return None
    if run.info.lifecycle_stage != "active" or run.info.experiment_id != experiment_id:
        log.warning("MLflow: the recorded sweep run %s is gone; starting a new one", run_id)
        return None
    client.update_run(run_id, status="RUNNING")
    return run_id


def _start_parent(client: Any, cfg: SweepConfig, sweep_dir: Path, experiment_id: str) -> str:
    from mlflow.entities import Param

    from raysys.runs import shown

    name = f"{cfg.run.name}/{cfg.run.run_id}"
    tags = {"raysys.run": name, "raysys.run_dir": shown(sweep_dir)}
    run = client.create_run(experiment_id, run_name=name, tags=tags)
    params = [Param(k, v) for k, v in sweep_params(cfg).items()]
    client.log_batch(run.info.run_id, params=params)
    return run.info.run_id


def sweep_params(cfg: SweepConfig) -> dict[str, str]:
    """The sweep's settings as flat params of its parent run (the grid's axes, the model,
    the training recipe); `config.yaml` is attached with the report for the rest."""
    sw, tr = cfg.sweep, cfg.train

    def join(xs: list[Any]) -> str:
        return ",".join(str(x) for x in xs)

    cocktails = [c if isinstance(c, str) else str(c.get("name", "inline")) for c in sw.cocktails]
    out = {
        "model": cfg.model.source,
        "tasks": join(sw.tasks),
        "eval_tasks": join(sw.eval_tasks or sw.tasks),
        "cocktails": join(cocktails),
        "general": join(sw.general),
        "math": join(sw.math),
        "fractions": join(sw.fractions),
        "seeds": join(sw.seeds),
        "learning_rates": join(sw.learning_rates or [tr.learning_rate]),
        "lora_ranks": join(sw.lora_ranks or [tr.lora.r]),
        "train_size": sw.train_size,
        "scheduler": sw.scheduler,
        "train.batch_size": tr.batch_size,
        "train.max_seq_length": tr.max_seq_length,
        "generate.engine": cfg.generate.engine,
    }
    return {k: str(v)[:500] for k, v in out.items()}
