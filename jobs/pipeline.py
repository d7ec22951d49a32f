r"""`ray job submit` entrypoint: the study pipeline (SFT -> DPO (gated) -> synthesis rounds).

    ray job submit --address http://127.0.0.1:8265 --working-dir . \
        --runtime-env cluster/runtime_env.yaml -- \
        python jobs/pipeline.py --preset full run.storage_path=/mnt/shared/raysys

Arguments are those of `raysys pipeline`: a config (`--config PATH` or positional) or
`--preset embedded|full` (the quickstart's presets), `a.b=c` overrides, `--resume` to
continue the latest run of run.name (or run.run_id): finished stages are skipped, the
interrupted one resumes. Prints the stage x task table and the report's path.
Exit code 2 for bad input, 1 for an interrupted run.
"""

from __future__ import annotations

import sys

from _common import ensure_raysys, run


def preset_args(argv: list[str]) -> list[str]:
    """`--preset NAME` -> the preset's YAML as the config."""
    if "--preset" not in argv and not any(a.startswith("--preset=") for a in argv):
        return argv
    ensure_raysys()
    from raysys.pipeline.presets import preset_path

    out, name, i = [], None, 0
    while i < len(argv):
        if argv[i] == "--preset" and i + 1 < len(argv):
            name, i = argv[i + 1], i + 2
            continue
        if argv[i].startswith("--preset="):
            name = argv[i].split("=", 1)[1]
        else:
            out.append(argv[i])
        i += 1
    if name is None:
        print("jobs/pipeline.py: error: --preset needs a name (embedded or full)", file=sys.stderr)
        sys.exit(2)
    try:
        return ["--config", str(preset_path(name)), *out]
    except Exception as e:  # UserError: unknown preset
        print(f"jobs/pipeline.py: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":  # engines and trainers may spawn processes that re-import this file
    sys.exit(run("pipeline", __doc__, preset_args(sys.argv[1:])))
