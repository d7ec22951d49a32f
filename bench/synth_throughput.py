"""Synthesis throughput: labeled rows per minute and where the time goes.

Runs `raysys synth` as a user would (CLI, fresh storage, hf engine) on the embedded
model labeling `fomc_stance` inputs by chain-of-thought sampling + majority vote, then
reads the run's own `stats.json`: seconds and share of time in generation, answer
extraction + voting, and writing (shards, labels, SFT rows, DPO pairs), kept rows per
minute, yield. Writes bench/results/synth_throughput-<model>.json and a row in
BENCHMARKS.md.

    .venv/bin/python bench/synth_throughput.py [--model smollm2-135m-instruct] [--inputs 16]
        [--samples 3] [--max-new-tokens 64]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from train_overhead import _insert_row  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--inputs", type=int, default=16)
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    args = ap.parse_args()
    storage = Path(tempfile.mkdtemp(prefix="bench-synth-"))
    cmd = [
        sys.executable,
        "-m",
        "raysys.cli",
        "synth",
        str(ROOT / "configs" / "synth.yaml"),
        f"model.source={args.model}",
        f"run.storage_path={storage}",
        "run.run_id=bench",
        "generate.engine=hf",
        f"generate.max_new_tokens={args.max_new_tokens}",
        f"synth.size={args.inputs}",
        f"synth.samples={args.samples}",
    ]
    if args.model.startswith("tiny"):
        cmd.append("model.dtype=float32")
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    wall = time.perf_counter() - start
    stats = json.loads((storage / "synth" / "bench" / "synth" / "stats.json").read_text())
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    machine = f"{platform.machine()} {os.cpu_count()} cores"
    result = {
        "bench": "synth_throughput",
        "date": stamp,
        "machine": machine,
        "args": vars(args),
        "command_wall_seconds": wall,
        "inputs": stats["inputs"],
        "kept": stats["kept"],
        "yield": stats["yield"],
        "samples": stats["samples"],
        "seconds": stats["seconds"],
        "time_share": stats["time_share"],
        "kept_rows_per_minute": stats["kept_rows_per_minute"],
        "kept_rows_per_minute_end_to_end": stats["kept"] * 60 / wall,
    }
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"synth_throughput-{args.model}.json").write_text(json.dumps(result, indent=2))
    share = result["time_share"]
    line = (
        f"| {stamp} | `python bench/synth_throughput.py --model {args.model} --inputs "
        f"{args.inputs} --samples {args.samples} --max-new-tokens {args.max_new_tokens}` | "
        f"{machine} | {result['kept']}/{result['inputs']} kept, "
        f"**{result['kept_rows_per_minute']:.1f} kept rows/min** in the stage "
        f"({result['kept_rows_per_minute_end_to_end']:.1f}/min for the whole command, "
        f"{wall:.0f} s incl. Ray and model start-up); time: generation "
        f"{share.get('generation', 0):.1%}, extraction + vote "
        f"{share.get('extraction_and_vote', 0):.2%}, writing {share.get('writing', 0):.2%} |\n"
    )
    _insert_row(ROOT / "BENCHMARKS.md", "## Synthesis throughput", line)


if __name__ == "__main__":
    main()
