"""What a task looks like to a run: per split, the rows in its source against the rows
a run uses at given sizes, their label counts and the warnings (`raysys tasks show`)."""

from __future__ import annotations

from raysys.tasks import Entry, build_splits, entry
from raysys.tasks.sampling import SampleReport, sample_report


def default_sizes(name: str) -> dict[str, int]:
    """The split sizes a run uses unless told otherwise (and the pool synthesis labels)."""
    from raysys.config import SynthSection, TaskSection

    found = entry(name)
    defaults = TaskSection()
    sizes = {s: getattr(defaults, f"{s}_size") for s in found.task.splits}
    if found.pool:
        sizes["pool"] = SynthSection().size
    return sizes


def describe(name: str, sizes: dict[str, int], seed: int) -> tuple[Entry, list[SampleReport]]:
    """The task's registry entry and one sample report per split at `sizes` (a generated
    task's source is its generator: `source_rows` is 0)."""
    found = entry(name)
    if hasattr(found.source, "reports"):
        return found, found.source.reports(sizes, seed)
    labelled = found.task.kind == "classification"
    out = []
    for split, used in build_splits(name, sizes, seed).items():
        rep = sample_report(found.task.name, split, used, used, labelled)
        rep.source_rows = 0
        out.append(rep)
    return found, out
