"""cluster/aws.yaml's autoscaling, tried on this machine with Ray's fake multi-node provider.

Ray's autoscaler runs for real (autoscaler v2, as `ray up` starts it); only the cloud is fake:
a "launched" worker node is one more raylet on this machine, started by the autoscaler's
own process and killed once it has been idle for `idle_timeout_minutes`. The cluster config
is derived from cluster/aws.yaml (`fake_config`): its worker node types with their names,
labels, priorities and custom resources, and its head type's resources (the `raysys_driver`
that pins trial drivers there) and labels under the name the fake provider gives every head
(ray.head.default); scaled to a laptop: no GPUs (the GPU types run CPU-only), at most
`--cpus` CPUs per node and `--max-workers` nodes per type and in all, `min_workers: 0`, a
short idle timeout. The head has no CPU, so training workers and engine actors need worker
nodes, as GPU work does on the real cluster; trial drivers
(`sweep.driver_resource=raysys_driver`) stay on the head.

    python cluster/fake_multinode.py            # starts it, prints RAY_ADDRESS; Ctrl-C stops it
    # in another shell, with the variables it printed:
    raysys sweep configs/sweep_tiny.yaml sweep.driver_resource=raysys_driver \\
        sweep.max_concurrent_trials=2 run.storage_path=/tmp/raysys-fake
    ray status --address "$RAY_ADDRESS"          # worker nodes come, and go once idle

Everything runs under a private temp dir, on free ports, with its own auth token, and is
stopped by the PIDs of the processes that name that temp dir, never with `ray stop` (which
stops every Ray on the machine). Ray's own `ray.cluster_utils.AutoscalingCluster` is not
used for that reason (it runs `ray stop --force` before starting and to shut down) and
because it reads a template the Ray 2.60.0 wheel does not ship (see `fake_provider`).
tests/integration/test_autoscaling.py runs the tiny sweep on it.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Ray's fake provider calls the head node FAKE_HEAD_NODE_ID (launched nodes: ...00001,
# ...00002) and tags it with the node type FAKE_HEAD_NODE_TYPE, whatever the config names its
# head type: the launcher's head type (head_cpu) keeps its resources and labels under it.
from ray.autoscaler._private.fake_multi_node.node_provider import (
    FAKE_HEAD_NODE_ID,
    FAKE_HEAD_NODE_TYPE,
)

AWS = Path(__file__).resolve().parent / "aws.yaml"
# Ports of the head's `ray start`, one block of consecutive free ports (worker ports after).
PORT_NAMES = (
    "port dashboard-port ray-client-server-port node-manager-port object-manager-port "
    "metrics-export-port dashboard-agent-listen-port dashboard-agent-grpc-port "
    "runtime-env-agent-port"
).split()
WORKER_PORTS = 100


def fake_config(
    launcher: dict[str, Any],
    *,
    cpus: int = 1,
    max_workers: int = 2,
    idle_timeout_minutes: float = 0.25,
    head_cpus: int = 0,
    object_store_bytes: int = 256 * 2**20,
    gcs_address: str | None = None,
) -> dict[str, Any]:
    """The fake_multinode cluster config for `launcher` (a cluster launcher config such as
    cluster/aws.yaml): its node types with their names, labels, priorities and custom
    resources; CPU-only, at most `cpus` CPUs and `max_workers` nodes per worker type (and
    in all), the head with `head_cpus`; every type from 0 nodes; idle nodes stop after
    `idle_timeout_minutes` (fractions allowed). Cloud-only sections (node_config, docker,
    auth, file mounts, setup and start commands) are left empty: the fake provider starts a
    raylet in-process, on this machine."""
    head = launcher["head_node_type"]
    types = {}
    for name, spec in launcher["available_node_types"].items():
        res = {k: v for k, v in spec.get("resources", {}).items() if k not in ("CPU", "GPU")}
        if name == head:
            name, most = FAKE_HEAD_NODE_TYPE, 0
            res = {"CPU": head_cpus, **res}
        else:
            most = min(spec.get("max_workers", 0), max_workers)
            res = {"CPU": min(cpus, spec["resources"].get("CPU", cpus)), **res}
            res["object_store_memory"] = object_store_bytes  # the fake provider's knob
        fake = {"resources": res, "node_config": {}, "min_workers": 0, "max_workers": most}
        for key in ("labels", "priority"):
            if key in spec:
                fake[key] = copy.deepcopy(spec[key])
        types[name] = fake
    provider = {
        **fake_provider(),
        "use_node_id_as_ip": True,
        "disable_node_updaters": True,
        "disable_launch_config_check": True,
        # autoscaler v2 (what `ray up` runs): launch several nodes in one round
        "launch_multiple": True,
        "head_node_id": FAKE_HEAD_NODE_ID,
    }
    if gcs_address:
        provider["gcs_address"] = gcs_address  # else the provider assumes <this ip>:6379
    return {
        "cluster_name": f"{launcher['cluster_name']}-fake",
        "max_workers": min(launcher.get("max_workers", max_workers), max_workers),
        "upscaling_speed": launcher.get("upscaling_speed", 1.0),
        "idle_timeout_minutes": idle_timeout_minutes,
        "provider": provider,
        "auth": {},
        "docker": {},
        "head_node_type": FAKE_HEAD_NODE_TYPE,
        "available_node_types": types,
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


def fake_provider() -> dict[str, str]:
    """`type: fake_multinode`, Ray's fake multi-node provider, where this Ray can load it.
    The Ray 2.60.0 wheel lacks the file the autoscaler reads that type's defaults from
    (ray/autoscaler/_private/fake_multi_node/example.yaml): its monitor dies at start with
    FileNotFoundError. The same provider class named as an `external` provider module
    starts from Ray's minimal external defaults instead, which this config overrides
    entirely (every field is set), so the autoscaler runs the same code either way."""
    import ray.autoscaler._private.fake_multi_node as fake

    if (Path(fake.__file__).parent / "example.yaml").is_file():
        return {"type": "fake_multinode"}
    return {"type": "external", "module": f"{fake.__name__}.node_provider.FakeMultiNodeProvider"}


def load_launcher(path: Path = AWS) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


# --------------------------------------------------------------------------- the cluster


@dataclass
class FakeCluster:
    """A started fake autoscaling cluster: its GCS address (RAY_ADDRESS), the environment
    a client needs (the token), its temp dir and the config it runs."""

    address: str
    env: dict[str, str]
    temp_dir: str
    config: dict[str, Any]
    config_path: str
    started: float = field(default_factory=time.monotonic)

    def client_env(self) -> dict[str, str]:
        return {**self.env, "RAY_ADDRESS": self.address}

    def monitor_log(self) -> Path | None:
        """The autoscaler's log (launches and terminations, one line each)."""
        logs = sorted(Path(self.temp_dir).glob("session_*/logs/monitor.log"))
        return logs[-1] if logs else None

    def stop(self) -> list[int]:
        """Stop every process of this cluster (the head's, the autoscaler's fake nodes,
        drivers they started) by PID; returns the PIDs still running after that."""
        return stop_processes(self.temp_dir)


def start(
    launcher: dict[str, Any] | None = None,
    temp_dir: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 180,
    **knobs: Any,
) -> FakeCluster:
    """Start the head of the fake cluster (`fake_config(launcher, **knobs)`) with the
    autoscaler; no worker node until something asks for resources."""
    ray = str(Path(sys.executable).parent / "ray")
    temp_dir = temp_dir or tempfile.mkdtemp(prefix="rf", dir="/tmp")  # short: socket paths
    base = free_block(len(PORT_NAMES) + WORKER_PORTS)
    ports = {name: base + i for i, name in enumerate(PORT_NAMES)}
    gcs = f"127.0.0.1:{ports['port']}"
    config = fake_config(launcher or load_launcher(), gcs_address=gcs, **knobs)
    config_path = str(Path(temp_dir) / "fake_cluster.yaml")
    Path(config_path).write_text(yaml.safe_dump(config, sort_keys=False))
    head_type = config["head_node_type"]
    head = config["available_node_types"][head_type]["resources"]
    custom = {k: v for k, v in head.items() if k not in ("CPU", "GPU")}
    head_labels = config["available_node_types"][head_type].get("labels", {})
    token = os.environ.get("RAY_AUTH_TOKEN") or secrets.token_hex(32)
    base_env = {**(env if env is not None else os.environ)}
    for k in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH"):
        base_env.pop(k, None)
    client = {
        **base_env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{base_env.get('PATH', '')}",
        "RAY_AUTH_MODE": "token",  # as the recipe's head: a client needs the token
        "RAY_AUTH_TOKEN": token,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    head_env = {
        **client,
        "RAY_FAKE_CLUSTER": "1",  # the provider refuses to start without it
        "AUTOSCALER_UPDATE_INTERVAL_S": "1",
        # autoscaler v2 (what `ray up` starts), set up as Ray's AutoscalingCluster sets it
        # up: not with RAY_NODE_TYPE_NAME, which the fake nodes would inherit
        "RAY_enable_autoscaler_v2": "1",
        "RAY_CLOUD_INSTANCE_ID": FAKE_HEAD_NODE_ID,
    }
    cmd = [ray, "start", "--head", "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1"]
    cmd += [f"--{name}={port}" for name, port in ports.items()]
    cmd += [
        f"--min-worker-port={base + len(PORT_NAMES)}",
        f"--max-worker-port={base + len(PORT_NAMES) + WORKER_PORTS - 1}",
        f"--num-cpus={head.get('CPU', 0)}",
        f"--num-gpus={head.get('GPU', 0)}",
        f"--resources={json.dumps(custom)}",
        "--labels=" + ",".join(f"{k}={v}" for k, v in head_labels.items()),
        f"--object-store-memory={knobs.get('object_store_bytes', 256 * 2**20)}",
        f"--autoscaling-config={config_path}",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
    ]
    cluster = FakeCluster(gcs, client, temp_dir, config, config_path)
    try:
        done = subprocess.run(cmd, env=head_env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(
                f"ray start failed (logs: {temp_dir}/session_latest/logs):\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
    except BaseException:
        cluster.stop()  # (its temp dir stays, for the logs)
        raise
    return cluster


def free_block(n: int) -> int:
    """The first of `n` consecutive ports free on loopback and on all interfaces, above
    Ray's default worker ports (10002-19999) and below the kernel's ephemeral range."""
    for _ in range(200):
        base = secrets.randbelow(12_000 - n) + 20_000
        if all(_port_free(p) for p in range(base, base + n)):
            return base
    raise RuntimeError(f"no block of {n} free ports found")


def _port_free(port: int) -> bool:
    for host in ("127.0.0.1", "0.0.0.0"):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def cluster_processes(temp_dir: str) -> list[Any]:
    """Processes whose command line names `temp_dir` (GCS, raylets, agents, the
    autoscaler, workers) and everything they started, this process excepted."""
    import psutil

    found: dict[int, Any] = {}
    for p in psutil.process_iter(["cmdline"]):
        if any(temp_dir in arg for arg in p.info["cmdline"] or []):
            found[p.pid] = p
            try:
                found.update((c.pid, c) for c in p.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
    found.pop(os.getpid(), None)
    return list(found.values())


def stop_processes(temp_dir: str) -> list[int]:
    """SIGTERM them all (found before any is signalled), SIGKILL what is left after 5 s;
    again for anything started meanwhile. Returns the survivors' PIDs."""
    import psutil

    def send(procs: list[Any], sig: int) -> None:
        for p in procs:
            try:
                p.send_signal(sig)
            except psutil.NoSuchProcess:
                pass

    for _ in range(3):
        procs = [p for p in cluster_processes(temp_dir) if running(p)]
        if not procs:
            return []
        send(procs, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while (left := [p for p in procs if running(p)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        send(left, signal.SIGKILL)
        psutil.wait_procs(left, timeout=5)
    return [p.pid for p in cluster_processes(temp_dir) if running(p)]


def running(p: Any) -> bool:
    """Alive and not a zombie (a dead child the init process has not reaped yet)."""
    import psutil

    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=AWS, help="cluster launcher config")
    ap.add_argument("--cpus", type=int, default=1, help="CPUs per worker node (cap)")
    ap.add_argument("--max-workers", type=int, default=2, help="worker nodes per type (cap)")
    ap.add_argument("--idle-timeout-minutes", type=float, default=0.25)
    args = ap.parse_args(argv)
    cluster = start(
        load_launcher(args.config),
        cpus=args.cpus,
        max_workers=args.max_workers,
        idle_timeout_minutes=args.idle_timeout_minutes,
    )
    print(f"fake cluster from {args.config} is up (config: {cluster.config_path})")
    print(f"export RAY_ADDRESS={cluster.address} RAY_AUTH_MODE=token ", end="")
    print(f"RAY_AUTH_TOKEN={cluster.env['RAY_AUTH_TOKEN']}")
    print(f"autoscaler log: {cluster.monitor_log()}")
    print("Ctrl-C stops it")
    signal.signal(signal.SIGINT, signal.default_int_handler)  # (even when started with `&`)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stops it too (the finally below)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        left = cluster.stop()
        print("stopped" if not left else f"still running: {left}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
