"""A real Ray head (or cluster) for the tests that start one with `ray start`: free
loopback ports, its processes found by its private temp dir, stopped by their own PIDs.
The helpers are cluster/fake_multinode.py's (the user script that starts a local
autoscaling cluster the same way), shared by the job, cluster-security, multi-node and
autoscaling tests."""

from __future__ import annotations

from tests.fixtures import fake_multinode

_fm = fake_multinode()
free_block = _fm.free_block  # n consecutive free loopback ports
head_processes = _fm.cluster_processes  # processes naming the temp dir, and their children
stop_head = _fm.stop_processes  # SIGTERM, SIGKILL after 5 s; returns the survivors
running = _fm.running  # alive and not a zombie
