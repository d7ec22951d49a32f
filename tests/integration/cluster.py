"""A real multi-node Ray cluster on one machine, as Ray's own tests build one: a head and
worker nodes started with `ray start` (their own ports, temp dirs and environment),
stopped by their own PIDs (never `ray stop`, which would kill every Ray here).

Worker nodes share no disk with the driver: each runs in its own mount namespace
(`unshare --mount`, root) with an empty private tmpfs over every path in `hidden` (the
driver's cache, where an object-store run's mirror lives), so code that assumes a shared
disk fails on them as it would on a real cluster. Each worker advertises a custom
resource (`worker`) that trials, Train workers and engine actors can be steered with;
the head advertises no CPU, so nothing that needs one runs next to the driver.

Health checks are fast (a dead node is noticed in about 3 s instead of 30 s), so a
node-level fault drill fits in a test.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.integration.ray_head import free_block, head_processes, running, stop_head

VENV_BIN = Path(sys.executable).parent
RAY = str(VENV_BIN / "ray")
RESOURCE = "worker"  # what every worker node advertises (100 of it)
FAST_HEALTH_CHECKS = {
    "RAY_health_check_initial_delay_ms": "0",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "4",
}
PORT_NAMES = (
    "node-manager-port object-manager-port metrics-export-port dashboard-agent-listen-port "
    "dashboard-agent-grpc-port runtime-env-agent-port"
).split()


def can_unshare() -> bool:
    """Root with `unshare` and tmpfs mounts: what a worker node's private disk needs."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs t /mnt"],
        capture_output=True,
    )
    return probe.returncode == 0


@dataclass
class Node:
    name: str
    temp_dir: str
    cache: Path  # this node's RAYSYS_CACHE
    proc: subprocess.Popen | None = None  # `ray start --block` (workers)

    def processes(self) -> list[psutil.Process]:
        return head_processes(self.temp_dir)

    def raylet(self) -> psutil.Process | None:
        for p in self.processes():
            try:
                if p.name() == "raylet" and running(p):
                    return p
            except psutil.NoSuchProcess:
                pass
        return None

    def runs(self, proctitle: str) -> bool:
        """Some live process of this node has `proctitle` in its command line (Ray's
        worker processes set theirs to `ray::<Actor>...`)."""
        for p in self.processes():
            try:
                if running(p) and any(proctitle in a for a in p.cmdline()):
                    return True
            except psutil.NoSuchProcess:
                pass
        return False


@dataclass
class Cluster:
    address: str  # the head's GCS, what RAY_ADDRESS names
    env: dict[str, str]  # a driver's environment for this cluster (token auth included)
    head: Node
    workers: list[Node] = field(default_factory=list)

    def driver_env(self, cache: Path, **extra: str) -> dict[str, str]:
        return {**self.env, "RAY_ADDRESS": self.address, "RAYSYS_CACHE": str(cache), **extra}

    def kill_raylet(self, node: Node) -> int:
        """A node-level fault: SIGKILL the node's raylet (its workers and `ray start`
        follow it down). Returns the raylet's PID."""
        raylet = node.raylet()
        assert raylet is not None, f"{node.name} has no raylet"
        raylet.send_signal(signal.SIGKILL)
        return raylet.pid

    def alive_nodes(self) -> int:
        """Nodes the GCS counts alive (asked in a subprocess: this process stays off Ray)."""
        code = "import ray; ray.init(); print(sum(n['Alive'] for n in ray.nodes()))"
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**self.env, "RAY_ADDRESS": self.address},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return int(out.stdout.strip().splitlines()[-1])


def _ports(base: int) -> list[str]:
    return [f"--{name}={base + i}" for i, name in enumerate(PORT_NAMES)] + [
        f"--min-worker-port={base + 10}",
        f"--max-worker-port={base + 59}",
    ]


@contextmanager
def ray_cluster(
    root: Path,
    hidden: list[Path],
    workers: int = 2,
    worker_cpus: int = 2,
    worker_env: dict[str, str] | None = None,
) -> Iterator[Cluster]:
    """A head (0 CPUs) and `workers` worker nodes (`worker_cpus` CPUs and the `worker`
    resource each), every worker in its own mount namespace with `hidden` covered by a
    private tmpfs and `<root>/<name>-cache` as its RAYSYS_CACHE. Token auth on, with a
    token of its own."""
    token = secrets.token_hex(32)
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    for k in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH", "RAYSYS_FAULTS"):
        env.pop(k, None)
    nodes: list[Node] = []
    base = free_block(70 * (workers + 1))
    head = Node("head", tempfile.mkdtemp(prefix="rh", dir="/tmp"), root / "head-cache")
    nodes.append(head)
    try:
        cmd = [RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={base + 60}"]
        cmd += _ports(base) + [
            f"--ray-client-server-port={base + 61}",
            f"--dashboard-port={base + 62}",
            "--dashboard-host=127.0.0.1",
            "--num-cpus=0",
            "--object-store-memory=200000000",
            f"--temp-dir={head.temp_dir}",
            "--disable-usage-stats",
        ]
        started = subprocess.run(
            cmd, env={**env, **FAST_HEALTH_CHECKS}, capture_output=True, text=True, timeout=180
        )
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
        address = f"127.0.0.1:{base + 60}"
        for i in range(workers):
            name = f"w{i + 1}"
            temp_dir = tempfile.mkdtemp(prefix=f"r{name}", dir="/tmp")  # short: socket paths
            node = Node(name, temp_dir, root / f"{name}-cache")
            node.cache.mkdir(parents=True, exist_ok=True)
            nodes.append(node)
            start = [RAY, "start", f"--address={address}", "--node-ip-address=127.0.0.1"]
            start += _ports(base + 70 * (i + 1)) + [
                f"--num-cpus={worker_cpus}",
                f'--resources={{"{RESOURCE}": 100}}',
                "--object-store-memory=200000000",
                f"--temp-dir={node.temp_dir}",
                "--disable-usage-stats",
                "--block",
            ]
            # the private disk: an empty tmpfs over each hidden path, then `ray start`
            mounts = [f"mount -t tmpfs -o size=512m hidden {shlex.quote(str(p))}" for p in hidden]
            script = " && ".join([*mounts, f"exec {shlex.join(start)}"])
            node.proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                env={**env, **(worker_env or {}), "RAYSYS_CACHE": str(node.cache)},
                stdout=subprocess.DEVNULL,
                stderr=open(root / f"{name}.log", "wb"),  # noqa: SIM115 - the node owns it
            )
        cluster = Cluster(address, env, head, nodes[1:])
        _wait_for(lambda: cluster.alive_nodes() == workers + 1, 120, "worker nodes to join")
        yield cluster
    finally:
        survivors = []
        for node in reversed(nodes):
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
            survivors += stop_head(node.temp_dir)
            if node.proc is not None:
                try:
                    node.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
            shutil.rmtree(node.temp_dir, ignore_errors=True)
        assert not survivors, f"cluster processes still running: {survivors}"


def _wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
