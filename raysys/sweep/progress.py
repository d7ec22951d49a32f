"""The sweep's progress bar: trials done / running / failed of the grid, with an ETA, and
the latest training step of a running trial. A Tune callback, so it sees what Tune sees
(a resumed sweep starts with its finished trials counted)."""

from __future__ import annotations

from typing import Any

from ray.tune import Callback

from raysys.console import Progress
from raysys.sweep.grid import tune_trial_id

_DONE, _RUNNING, _FAILED = "TERMINATED", "RUNNING", "ERROR"


class SweepProgress(Callback):
    """Counts trials by Tune's status after every step of Tune's loop."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.bar: Progress | None = None
        self.latest = ""

    def __getstate__(self) -> dict[str, Any]:
        # Tune keeps its callbacks in the experiment state: the bar stays behind
        return {"total": self.total, "bar": None, "latest": ""}

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        step, loss = result.get("step"), result.get("loss")
        if step is not None:
            self.latest = f"{tune_trial_id(trial.config)} step {step}" + (
                f" loss {loss:.3g}" if isinstance(loss, int | float) else ""
            )

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        counts = {s: 0 for s in (_DONE, _RUNNING, _FAILED)}
        for t in trials:
            if t.status in counts:
                counts[t.status] += 1
        if self.bar is None:
            self.bar = Progress("sweep trials", total=max(self.total, len(trials)), unit="trials")
        postfix = f"{counts[_RUNNING]} running, {counts[_FAILED]} failed"
        if self.latest and counts[_RUNNING]:
            postfix += f"; {self.latest}"
        self.bar.set(counts[_DONE], postfix)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.bar is not None:
            self.on_step_end(0, trials)
            self.bar.close()
            self.bar = None
