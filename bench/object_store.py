"""Object-store run directories: what `run.storage_path=s3://...` costs against a local path.

Runs the tiny sweep (2 trials, `sweep.fractions=[1.0]`) as a user would, once with a local
storage path and once with an S3 bucket on a real S3 server (moto's server mode) on
127.0.0.1, alternating, and reports the sweep's wall time side by side (ratio s3 / local),
the objects and bytes that went to the bucket, and the cost of a `--resume` of the finished
sweep from an empty cache (pull + nothing to redo). Loopback S3 has no network latency: the
ratio is the sync's own work (listing, uploads, Tune's and Ray Train's remote storage), not
what a cloud bucket over the network adds.

    .venv/bin/python bench/object_store.py             # ~5 min on 2 cores
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from train_overhead import _insert_row  # noqa: E402

BUCKET = "raysys-bench"


def _sweep(storage: str, run_id: str, cache: Path, *extra: str) -> float:
    cmd = [sys.executable, "-m", "raysys.cli", "sweep", "configs/sweep_tiny.yaml"]
    cmd += [f"run.storage_path={storage}", f"run.run_id={run_id}", "sweep.fractions=[1.0]"]
    env = {**os.environ, "RAYSYS_CACHE": str(cache)}
    start = time.perf_counter()
    proc = subprocess.run([*cmd, *extra], cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"sweep failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1, help="local/s3 pairs (alternating)")
    args = ap.parse_args()
    import logging

    from moto.server import ThreadedMotoServer
    from pyarrow import fs

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per S3 request

    for k, v in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        os.environ.setdefault(k, v)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"127.0.0.1:{port}"
    s3 = fs.S3FileSystem(endpoint_override=endpoint, scheme="http", allow_bucket_creation=True)
    s3.create_dir(BUCKET)
    uri = f"s3://{BUCKET}/runs?endpoint_override={endpoint}&scheme=http&region=us-east-1"
    tmp = Path(tempfile.mkdtemp(prefix="raysys-bench-s3-"))
    cache = tmp / "cache"
    walls: dict[str, list[float]] = {"local": [], "s3": []}
    for i in range(args.repeats):
        walls["local"].append(_sweep(str(tmp / "local"), f"l{i}", cache))
        walls["s3"].append(_sweep(uri, f"s{i}", cache))
        print(f"pair {i}: local {walls['local'][-1]:.1f}s, s3 {walls['s3'][-1]:.1f}s", flush=True)
    infos = s3.get_file_info(fs.FileSelector(f"{BUCKET}/runs/sweep_tiny/s0", recursive=True))
    files = [f for f in infos if f.type == fs.FileType.File]
    ckpt = [f for f in files if "/ray_train/" in f.path]
    tune = [f for f in files if "/tune/" in f.path]
    resume = _sweep(uri, "s0", tmp / "cache-other-machine", "--resume")
    server.stop()
    med = {k: statistics.median(v) for k, v in walls.items()}
    result = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "command": "python bench/object_store.py",
        "seconds": {**{f"{k}_sweep_s": v for k, v in med.items()}, "resume_finished_s": resume},
        "ratio_s3_vs_local": med["s3"] / med["local"],
        "bucket": {
            "objects": len(files),
            "bytes": sum(f.size for f in files),
            "checkpoint_objects": len(ckpt),
            "checkpoint_bytes": sum(f.size for f in ckpt),
            "tune_objects": len(tune),
        },
    }
    out = ROOT / "bench" / "results" / "object_store.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))  # atomic: a bench result, rewritten whole
    print(json.dumps(result, indent=2))
    b = result["bucket"]
    _insert_row(
        ROOT / "BENCHMARKS.md",
        "## Object-store run directories",
        f"| {result['date']} | {result['machine']} | {med['local']:.0f} s | {med['s3']:.0f} s "
        f"| {result['ratio_s3_vs_local']:.2f}x | {b['objects']} objects, "
        f"{b['bytes'] / 2**20:.1f} MiB ({b['checkpoint_bytes'] / 2**20:.1f} MiB checkpoints) "
        f"| {resume:.0f} s | `{result['command']}` |\n",
    )


if __name__ == "__main__":
    main()
