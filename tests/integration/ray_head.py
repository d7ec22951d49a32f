"""A real Ray head for the tests that start one with `ray start`: free loopback ports, its
processes found by its private temp dir, stopped by their own PIDs (shared by the job and
cluster-security tests)."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import time

import psutil


def free_block(n: int) -> int:
    """The first of `n` consecutive ports free on loopback and on all interfaces, below
    the kernel's ephemeral range and above Ray's default worker ports (10002-19999)."""
    for _ in range(200):
        base = secrets.randbelow(12_000 - n) + 20_000
        if all(port_free(p) for p in range(base, base + n)):
            return base
    raise RuntimeError(f"no block of {n} free ports found")


def port_free(port: int) -> bool:
    for host in ("127.0.0.1", "0.0.0.0"):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def head_processes(temp_dir: str) -> list[psutil.Process]:
    """The head's processes (their command lines name its temp dir: GCS, raylet,
    dashboard, agents, monitors, workers) and everything they started (job drivers)."""
    found: dict[int, psutil.Process] = {}
    for p in psutil.process_iter(["cmdline"]):
        if any(temp_dir in arg for arg in p.info["cmdline"] or []):
            found[p.pid] = p
            try:
                found.update((c.pid, c) for c in p.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
    found.pop(os.getpid(), None)
    return list(found.values())


def stop_head(temp_dir: str) -> list[int]:
    """SIGTERM the head's processes (all found before any is signalled, so none is
    reparented out of sight), SIGKILL what is left after 5 s (GCS, raylet and the
    runtime-env agent outwait a SIGTERM by 15 s or more); again for anything started
    meanwhile. Returns the survivors."""
    for _ in range(3):
        procs = [p for p in head_processes(temp_dir) if running(p)]
        if not procs:
            return []
        signal_all(procs, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while (alive := [p for p in procs if running(p)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        signal_all(alive, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=5)
    return [p.pid for p in head_processes(temp_dir) if running(p)]


def signal_all(procs: list[psutil.Process], sig: int) -> None:
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.NoSuchProcess:
            pass


def running(p: psutil.Process) -> bool:
    """Alive and not a zombie (a dead child the init process has not reaped yet)."""
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
