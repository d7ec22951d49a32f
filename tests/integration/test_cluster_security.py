"""A cluster nobody else can drive, shown with Ray itself rather than read off the recipes.

1. Uploads: a copy of this repo with secret files planted in it is packed exactly as
   `ray job submit --working-dir .` packs it (Ray's own `upload_working_dir_if_needed` and
   `create_package`, with and without cluster/runtime_env.yaml, with and without .gitignore,
   and with the runtime env's excludes alone), and copied the way `ray up` copies it (rsync
   with the launcher's own exclude and filter arguments, built by Ray). No secret gets through;
   the code does.
2. The head: the `ray start` line of cluster/aws.yaml's head_start_ray_commands (gcp.yaml's is
   the same; tests/test_cluster_configs.py checks it) runs here as written, with only the
   ports, the node address, the temp dir and the token's path moved onto this machine. It makes
   its own token, its dashboard listens on 127.0.0.1 only, a job without the token or with a
   wrong one is refused, and a job with it runs, in the planted copy uploaded as its working dir.

The head is private (free loopback ports, a fresh temp dir, HOME in a temp dir so no token of
this machine's is found) and is stopped by the PIDs of its own processes, never `ray stop`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from tests.fixtures import REPO
from tests.integration.ray_head import free_block, stop_head

VENV_BIN = Path(sys.executable).parent
RAY = str(VENV_BIN / "ray")
RUNTIME_ENV = REPO / "cluster" / "runtime_env.yaml"
AWS = REPO / "cluster" / "aws.yaml"
TOKEN_PATH = "/home/ray/.raysys/auth_token"  # the recipes' token file on a node

# Secret files a checkout may hold: path -> a marker that must not appear in any upload.
SECRETS = [
    ".env",
    ".env.local",
    "configs/.env.production",
    "deploy/prod.env",
    ".envrc",
    ".netrc",
    ".aws/credentials",
    ".aws/config",
    ".ssh/id_ed25519",
    "id_rsa",
    "keys/server.pem",
    "tls/server.key",
    "certs/client.p12",
    "gcp/my-project-sa.json",
    "my-service-account-prod.json",
    "credentials.json",
    ".config/gcloud/application_default_credentials.json",
    "client_secret_123.apps.googleusercontent.com.json",
    "secrets/hf_token.txt",
    "raysys/secrets/db_password",
    ".git-credentials",
    ".pypirc",
    ".npmrc",
    ".docker/config.json",
    ".kube/config",
    "infra/terraform.tfstate",
    "infra/terraform.tfstate.backup",
    "infra/prod.tfvars",
    "raysys-aws.token",
    "auth_token",
]
# Random per run: this file travels in the uploads too, so the marker may not be in it.
MARK = f"planted-{secrets.token_hex(8)}-"


def _tracked() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    return [p for p in out.split("\0") if p and (REPO / p).is_file()]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repo's tracked files (as they are on disk), plus planted secrets."""
    tree = tmp_path_factory.mktemp("checkout")
    for rel in _tracked():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, tree / rel)
    for i, rel in enumerate(SECRETS):
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(f"{MARK}{i}\n")
    return tree


def _code() -> set[str]:
    """What a job needs: every tracked Python file and config, and pyproject.toml."""
    return {
        p
        for p in _tracked()
        if p.endswith(".py") or p.startswith("configs/") and p.endswith(".yaml")
    } | {"pyproject.toml"}


def _no_secret_in(names: set[str], blobs: dict[str, bytes]) -> None:
    leaked = sorted(set(SECRETS) & names)
    assert not leaked, f"secret files in the upload: {leaked}"
    marked = sorted(n for n, b in blobs.items() if MARK.encode() in b)
    assert not marked, f"secret content in the upload: {marked}"


# --------------------------------------------------------------------------- 1. uploads


@pytest.mark.parametrize(
    "how",
    [
        "--working-dir . --runtime-env cluster/runtime_env.yaml",
        "--working-dir . (no runtime env file)",
        "RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1 (.rayignore alone)",
        "runtime_env.yaml excludes alone (no .rayignore, no .gitignore)",
    ],
)
def test_working_dir_package_holds_the_code_and_no_secret(
    checkout: Path, tmp_path: Path, how: str
) -> None:
    from ray._private.runtime_env.packaging import create_package
    from ray._private.runtime_env.working_dir import upload_working_dir_if_needed
    from ray.dashboard.modules.dashboard_sdk import parse_runtime_env_args

    tree = checkout
    if "no .rayignore" in how:  # a copy of the tree that lost its .rayignore
        tree = tmp_path / "tree"
        shutil.copytree(checkout, tree)
        (tree / ".rayignore").unlink()
    with_env = "runtime_env.yaml" in how
    include_gitignore = "IGNORE_GITIGNORE" not in how and "no .gitignore" not in how
    # What `ray job submit` does with its --runtime-env and --working-dir options ...
    runtime_env = parse_runtime_env_args(
        runtime_env=str(RUNTIME_ENV) if with_env else None, working_dir=str(tree)
    )
    package = tmp_path / "package.zip"

    # ... and what its JobSubmissionClient does to upload the working dir (dashboard_sdk's
    # _upload_package), writing the zip here instead of sending it to a head.
    def upload_fn(working_dir: str, excludes: list[str] | None, is_file: bool = False) -> None:
        assert not is_file
        create_package(
            working_dir,
            package,
            include_gitignore=include_gitignore,
            include_parent_dir=False,
            excludes=excludes,
        )

    upload_working_dir_if_needed(
        runtime_env, include_gitignore=include_gitignore, upload_fn=upload_fn
    )
    with zipfile.ZipFile(package) as zf:
        blobs = {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}
    _no_secret_in(set(blobs), blobs)
    missing = sorted(_code() - set(blobs))
    assert not missing, f"code left out of the upload: {missing[:10]}"


def test_ray_up_rsync_copies_the_code_and_no_secret(checkout: Path, tmp_path: Path) -> None:
    """The launcher's rsync, run locally with the arguments Ray builds from aws.yaml: the
    checkout (file_mounts) arrives without secrets; Ray's own SSH key file (a single-file
    file mount) and the head's token folder still get through."""
    from ray.autoscaler._private.command_runner import SSHCommandRunner

    rsync = shutil.which("rsync")
    if rsync is None:
        pytest.skip("rsync is not installed here (`ray up` needs it on your machine)")
    config = yaml.safe_load(AWS.read_text())
    options = {"rsync_exclude": config["rsync_exclude"], "rsync_filter": config["rsync_filter"]}
    args = SSHCommandRunner._create_rsync_filter_args(None, options)  # Ray's own argument list

    def sync(source: Path, target: Path) -> None:
        src = f"{source}/" if source.is_dir() else str(source)
        target.parent.mkdir(parents=True, exist_ok=True)  # Ray runs `mkdir -p` first too
        subprocess.run([rsync, "-avz", *args, src, str(target)], check=True, capture_output=True)

    sync(checkout, tmp_path / "node")
    copied = {
        str(p.relative_to(tmp_path / "node")): p.read_bytes()
        for p in (tmp_path / "node").rglob("*")
        if p.is_file()
    }
    _no_secret_in(set(copied), copied)
    assert {"pyproject.toml", "raysys/__init__.py"} <= set(copied)
    key = tmp_path / "home" / ".ssh" / "ray-autoscaler_us-west-2.pem"
    key.parent.mkdir(parents=True)
    key.write_text("ssh key")
    sync(key, tmp_path / "ray_bootstrap_key.pem")
    assert (tmp_path / "ray_bootstrap_key.pem").read_text() == "ssh key"
    token_dir = tmp_path / "head" / ".raysys"
    token_dir.mkdir(parents=True)
    (token_dir / "auth_token").write_text("t")
    sync(token_dir, tmp_path / "worker" / ".raysys")
    assert (tmp_path / "worker" / ".raysys" / "auth_token").read_text() == "t"


# --------------------------------------------------------------------------- 2. the head


def _recipe_line(token_path: str, ports: dict[str, int]) -> str:
    """cluster/aws.yaml's head `ray start` line with this machine's ports, address, temp dir
    and token path; everything else as written."""
    config = yaml.safe_load(AWS.read_text())
    (line,) = [c for c in config["head_start_ray_commands"] if "ray start" in c]
    for old, new in (
        (TOKEN_PATH, token_path),
        ("--port=6379", f"--port={ports['port']}"),
        ("--object-manager-port=8076", f"--object-manager-port={ports['object-manager-port']}"),
    ):
        assert line.count(old) == 1, old
        line = line.replace(old, new)
    # No cloud here: the launcher's autoscaler config is the one thing left out.
    line, n = re.subn(r"\s--autoscaling-config=\S+", "", line)
    assert n == 1
    extra = {k: v for k, v in ports.items() if k not in ("port", "object-manager-port")}
    return line + " " + " ".join(f"--{k}={v}" for k, v in extra.items())


def _client_env(home: Path, **auth: str) -> dict[str, str]:
    """This machine's environment without any Ray address, token or cloud credential."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RAY_", "AWS_", "GOOGLE_")) and k != "HOME"
    }
    return {
        **env,
        "HOME": str(home),
        "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        "RAY_USAGE_STATS_ENABLED": "0",
        **auth,
    }


@pytest.fixture(scope="module")
def recipe_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    temp_dir = tempfile.mkdtemp(prefix="rs", dir="/tmp")  # short: Ray's socket paths
    home = tmp_path_factory.mktemp("home")
    token_path = str(tmp_path_factory.mktemp("node") / ".raysys" / "auth_token")
    base = free_block(110)
    names = (
        "port dashboard-port ray-client-server-port node-manager-port object-manager-port "
        "metrics-export-port dashboard-agent-listen-port dashboard-agent-grpc-port "
        "runtime-env-agent-port"
    ).split()
    ports = {name: base + i for i, name in enumerate(names)}
    ports |= {"min-worker-port": base + 10, "max-worker-port": base + 109}
    line = _recipe_line(token_path, ports)
    line += f" --node-ip-address=127.0.0.1 --num-cpus=1 --temp-dir={temp_dir}"
    line += " --include-dashboard=true --disable-usage-stats"
    try:
        started = subprocess.run(
            ["bash", "-c", line], env=_client_env(home), capture_output=True, text=True, timeout=180
        )
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
        yield {
            "address": f"http://127.0.0.1:{ports['dashboard-port']}",
            "dashboard_port": ports["dashboard-port"],
            "token_path": token_path,
            "line": line,
            "home": home,
            "temp_dir": temp_dir,
        }
    finally:
        survivors = stop_head(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not survivors, f"head processes still running: {survivors}"


def test_the_head_makes_its_own_token_once(recipe_head: dict[str, Any]) -> None:
    path = Path(recipe_head["token_path"])
    token = path.read_text()
    assert re.fullmatch(r"[0-9a-f]{64}", token), "256 random bits, hex, no newline"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Run again (a head restart): the token-making part of the line keeps the token.
    prefix = recipe_head["line"].split("ray start")[0]
    env = _client_env(recipe_head["home"])
    subprocess.run(["bash", "-c", prefix], env=env, check=True, capture_output=True, timeout=30)
    assert path.read_text() == token


def test_the_dashboard_listens_on_loopback_only(recipe_head: dict[str, Any]) -> None:
    port = recipe_head["dashboard_port"]
    listening = {
        c.laddr.ip
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }
    assert listening == {"127.0.0.1"}, listening
    others = [
        a.address
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family == socket.AF_INET and not a.address.startswith("127.")
    ]
    for ip in others:  # the machine's other addresses: nothing answers there
        with socket.socket() as s, pytest.raises(OSError):
            s.settimeout(2)
            s.connect((ip, port))


def _submit(head: dict[str, Any], env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [RAY, "job", "submit", "--address", head["address"], *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


AUTH_REFUSED = re.compile(r"(?i)401|403|unauthori[sz]ed|forbidden|authentication")


@pytest.mark.parametrize("who", ["no token", "a wrong token"])
def test_a_job_without_the_token_is_refused(recipe_head: dict[str, Any], who: str) -> None:
    from ray.job_submission import JobSubmissionClient

    auth = {} if who == "no token" else {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}
    env = _client_env(recipe_head["home"], **auth)
    refused = _submit(recipe_head, env, "--", "python", "-c", "print(1)")
    assert refused.returncode != 0
    assert AUTH_REFUSED.search(refused.stdout + refused.stderr), refused.stderr[-2000:]
    headers = {} if who == "no token" else {"Authorization": f"Bearer {'0' * 64}"}
    with pytest.raises(Exception, match=AUTH_REFUSED):
        JobSubmissionClient(recipe_head["address"], headers=headers).list_jobs()


LIST_FILES = (
    "import json, os; print('FILES ' + json.dumps(sorted(os.path.relpath(os.path.join(d, f))"
    " for d, _, fs in os.walk('.') for f in fs)))"
)


def test_a_job_with_the_token_runs_in_an_upload_without_secrets(
    recipe_head: dict[str, Any], checkout: Path
) -> None:
    """`ray job submit --working-dir . --runtime-env cluster/runtime_env.yaml` from the planted
    checkout, as a client is told to: RAY_AUTH_MODE=token and the token's file. The job lists
    the working dir Ray unpacked on the node."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    env = _client_env(
        recipe_head["home"], RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=recipe_head["token_path"]
    )
    done = subprocess.run(
        [
            RAY,
            "job",
            "submit",
            "--address",
            recipe_head["address"],
            "--working-dir",
            ".",
            "--runtime-env",
            str(RUNTIME_ENV),
            "--submission-id",
            "recipe-1",
            "--",
            "python",
            "-c",
            LIST_FILES,
        ],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (listing,) = [ln for ln in done.stdout.splitlines() if ln.startswith("FILES ")]
    files = set(json.loads(listing.removeprefix("FILES ")))
    _no_secret_in(files, {})
    assert _code() <= files
    token = Path(recipe_head["token_path"]).read_text()
    client = JobSubmissionClient(
        recipe_head["address"], headers={"Authorization": f"Bearer {token}"}
    )
    # The refused submissions left no job behind.
    assert [j.submission_id for j in client.list_jobs()] == ["recipe-1"]
    info = client.get_job_info("recipe-1")
    assert info.status == JobStatus.SUCCEEDED
    # Why credentials never go in the runtime env: it is stored with the job and shown to
    # whoever can list jobs.
    assert info.runtime_env["env_vars"]["TOKENIZERS_PARALLELISM"] == "false"
