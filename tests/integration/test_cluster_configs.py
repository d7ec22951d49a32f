"""The cluster files (cluster/, .rayignore) checked with Ray's own code: the launcher schema,
the KubeRay autoscaler's reading of a RayCluster, runtime-env parsing and working-dir
packaging. Plus the pins that must match pyproject.toml, and the security of every recipe:
token auth, a dashboard nobody else reaches, scoped cloud roles, locked-down pods, pinned
downloads, no secrets in uploads. No cluster is started (tests/test_cluster_security.py starts
a head from the recipe's own command line)."""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from tests.fixtures import REPO

CLUSTER = REPO / "cluster"
LAUNCHER = {"aws": CLUSTER / "aws.yaml", "gcp": CLUSTER / "gcp.yaml"}
RAYCLUSTER = CLUSTER / "kuberay" / "raycluster.yaml"
RAYJOB = CLUSTER / "kuberay" / "rayjob.yaml"
RUNTIME_ENV = CLUSTER / "runtime_env.yaml"
RAYIGNORE = REPO / ".rayignore"
IAM = CLUSTER / "iam"
TOKEN_PATH = "/home/ray/.raysys/auth_token"  # where the launcher recipes keep the cluster token
# Secret names every upload path must leave out (.rayignore's last block, in gitignore syntax).
SECRETS_HEADER = "# Secrets:"
# Private-key names Ray's own rsync of its SSH key (~/ray_bootstrap_key.pem) must get through,
# and the cluster token the head's rsync gives the workers: .rayignore (an rsync_filter) covers
# them in the checkout, rsync_exclude cannot.
RSYNC_MAY_NOT_EXCLUDE = {"*.pem", "*.key", "id_rsa*", "id_ecdsa*", "id_ed25519*", "auth_token"}
DIGEST = re.compile(r"@sha256:(?:[0-9a-f]{64}|REPLACE-WITH-IMAGE-DIGEST)$")
DRIVER_RESOURCE = "raysys_driver"  # sweep.driver_resource in the sweep configs
MAX_PACKAGE_BYTES = 20 * 2**20  # the working-dir package is code and configs only

# Fields KubeRay's ray.io/v1 Go types declare without `omitempty`
# (ray-project/kuberay ray-operator/apis/ray/v1/raycluster_types.go).
KUBERAY_HEAD_REQUIRED = ("rayStartParams", "template")
KUBERAY_WORKER_REQUIRED = ("groupName", "minReplicas", "maxReplicas", "rayStartParams", "template")


def _load(path: Path) -> dict[str, Any]:
    """The file's first YAML document (the KubeRay files carry NetworkPolicies after it)."""
    return _docs(path)[0]


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _pyproject() -> dict[str, Any]:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python >= 3.11")
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _ray_pin() -> str:
    for dep in _pyproject()["project"]["dependencies"]:
        req = Requirement(dep)
        if req.name == "ray":
            (spec,) = req.specifier
            assert spec.operator == "==", f"pyproject.toml pins ray loosely: {dep}"
            return spec.version
    raise AssertionError("pyproject.toml lists no ray dependency")


def _is_spot(node_config: dict[str, Any]) -> bool:
    market = node_config.get("InstanceMarketOptions", {}).get("MarketType", "")
    scheduling = node_config.get("scheduling", {})
    blocks = scheduling if isinstance(scheduling, list) else [scheduling]
    return market.lower() == "spot" or any(
        b.get("preemptible") is True or b.get("provisioningModel") == "SPOT" for b in blocks
    )


def _ignore_patterns() -> list[str]:
    lines = (line.strip() for line in RAYIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _secret_patterns() -> list[str]:
    """.rayignore's secrets block: from its header line to the end of the file."""
    lines = RAYIGNORE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(SECRETS_HEADER))
    return [ln.strip() for ln in lines[start:] if ln.strip() and not ln.startswith("#")]


def _start_line(config: dict[str, Any], key: str) -> str:
    (line,) = [c for c in config[key] if "ray start" in c]
    return line


def _rsync_excludes_name(patterns: list[str], rel_path: str) -> bool:
    """rsync's reading of slash-free exclude patterns: one matches a file or directory name
    at any depth (so everything under an excluded directory goes too)."""
    parts = rel_path.split("/")
    return any(
        fnmatch.fnmatchcase(part, pat) for pat in patterns if "/" not in pat for part in parts
    ) or any(fnmatch.fnmatchcase(rel_path, f"*{pat}*") for pat in patterns if "/" in pat)


# --- ray up: AWS and GCP -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LAUNCHER))
def test_launcher_config_passes_rays_schema(name: str) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    # What `ray up` does before it talks to the cloud: merge defaults, then validate.
    validate_config(prepare_config(_load(LAUNCHER[name])))


@pytest.mark.parametrize("name", sorted(LAUNCHER))
def test_launcher_head_is_an_on_demand_cpu_node_hosting_drivers(name: str) -> None:
    config = _load(LAUNCHER[name])
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0, f"{name}: the head must not offer GPUs"
    assert head["resources"].get(DRIVER_RESOURCE, 0) >= 1, (
        f"{name}: the head must advertise {DRIVER_RESOURCE} (sweep trial drivers ask for it)"
    )
    assert not _is_spot(head["node_config"]), f"{name}: the head must be on-demand"
    others = [t for n, t in config["available_node_types"].items() if n != config["head_node_type"]]
    assert all(DRIVER_RESOURCE not in t["resources"] for t in others), (
        f"{name}: only the on-demand head may advertise {DRIVER_RESOURCE}"
    )


@pytest.mark.parametrize("name", sorted(LAUNCHER))
def test_launcher_gpu_workers_scale_from_zero_spot_first(name: str) -> None:
    from ray._private.label_utils import validate_node_label_syntax, validate_node_labels

    config = _load(LAUNCHER[name])
    assert config["idle_timeout_minutes"] > 0
    types = config["available_node_types"]
    gpu = {n: t for n, t in types.items() if t["resources"].get("GPU", 0) > 0}
    assert gpu, f"{name}: no GPU worker type"
    for type_name, node_type in gpu.items():
        assert node_type["min_workers"] == 0, f"{name}.{type_name}: GPU types scale from 0"
        assert node_type["max_workers"] > 0, f"{name}.{type_name}: max_workers must be > 0"
    for node_type in types.values():
        validate_node_labels(node_type.get("labels"))
        validate_node_label_syntax(node_type.get("labels"))
    spot = [t for t in gpu.values() if _is_spot(t["node_config"])]
    on_demand = [t for t in gpu.values() if not _is_spot(t["node_config"])]
    assert spot and on_demand, f"{name}: want a spot and an on-demand GPU type"
    # Autoscaler v2 breaks ties by priority: spot first, on-demand as the fallback.
    assert min(t.get("priority", 0) for t in spot) > max(t.get("priority", 0) for t in on_demand)
    if name == "gcp":  # GPU VMs cannot live-migrate: GCP refuses them without this
        for type_name, node_type in gpu.items():
            scheduling = node_type["node_config"]["scheduling"]
            assert scheduling["onHostMaintenance"] == "TERMINATE", type_name


@pytest.mark.parametrize("name", sorted(LAUNCHER))
def test_launcher_head_starts_with_token_auth_and_a_loopback_dashboard(name: str) -> None:
    config = _load(LAUNCHER[name])
    head = _start_line(config, "head_start_ray_commands")
    assert "--head" in head
    # Ray 2.60's `ray start` turns auth on only with RAY_AUTH_MODE=token (or an existing
    # token): the recipe says so itself and makes the token when the head has none.
    assert f"export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={TOKEN_PATH};" in head
    assert '[ -s "$RAY_AUTH_TOKEN_PATH" ] || (umask 077' in head
    assert "secrets.token_hex(32)" in head
    assert head.index("RAY_AUTH_MODE=token") < head.index("ray start")
    # The dashboard and job API on the head's loopback only; `ray dashboard` tunnels over SSH.
    assert "--dashboard-host=127.0.0.1" in head
    assert "0.0.0.0" not in " ".join(config["head_start_ray_commands"])
    # Workers start with the same token, which reaches them as a file mount the head fills.
    worker = _start_line(config, "worker_start_ray_commands")
    assert f"export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={TOKEN_PATH};" in worker
    token_dir = os.path.dirname(TOKEN_PATH)
    assert token_dir in config["file_mounts"], f"{name}: {token_dir} is no file mount"
    local = REPO / config["file_mounts"][token_dir]
    assert local.is_dir() and local.resolve().is_relative_to(CLUSTER)
    # The local side stays empty: a token there would go to the next cluster started.
    assert sorted(p.name for p in local.iterdir()) == ["README.md"], sorted(local.iterdir())
    assert not _rsync_excludes_name(config["rsync_exclude"], os.path.basename(TOKEN_PATH))
    # Interactive shells on the nodes (`ray exec ... "ray status"`) carry the token too.
    assert any(
        f"RAY_AUTH_TOKEN_PATH={TOKEN_PATH}' >> ~/.bashrc" in c for c in config["setup_commands"]
    )


def test_both_launchers_share_the_security_settings() -> None:
    aws, gcp = (_load(LAUNCHER[n]) for n in ("aws", "gcp"))
    for key in (
        "head_start_ray_commands",
        "worker_start_ray_commands",
        "file_mounts",
        "rsync_exclude",
        "rsync_filter",
    ):
        assert aws[key] == gcp[key], key
    assert aws["setup_commands"][1:] == gcp["setup_commands"][1:]


@pytest.mark.parametrize("name", sorted(LAUNCHER))
def test_launcher_rsync_leaves_out_secrets(name: str) -> None:
    config = _load(LAUNCHER[name])
    # .rayignore filters the checkout's rsync (private-key names included) ...
    assert ".rayignore" in config["rsync_filter"]
    # ... and rsync_exclude repeats the rest for every file mount.
    missing = set(_secret_patterns()) - RSYNC_MAY_NOT_EXCLUDE - set(config["rsync_exclude"])
    assert not missing, f"{name}: rsync_exclude lacks {sorted(missing)}"
    blocked = RSYNC_MAY_NOT_EXCLUDE & set(config["rsync_exclude"])
    assert not blocked, f"{name}: would stop Ray's SSH key or the token: {sorted(blocked)}"
    for key_file in ("ray_bootstrap_key.pem", "ray-autoscaler_us-west-2.pem", "id_rsa"):
        assert not _rsync_excludes_name(config["rsync_exclude"], key_file), key_file


def _policy(name: str) -> dict[str, Any]:
    return json.loads((IAM / name).read_text())


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_aws_nodes_run_with_scoped_roles() -> None:
    config = _load(LAUNCHER["aws"])
    types = config["available_node_types"]
    profiles = {n: t["node_config"]["IamInstanceProfile"]["Arn"] for n, t in types.items()}
    account = profiles[config["head_node_type"]].split(":")[4]
    # The head's own profile: set, so `ray up` creates no ray-autoscaler-v1 (EC2+S3 full).
    assert profiles.pop(config["head_node_type"]) == (
        f"arn:aws:iam::{account}:instance-profile/raysys-head"
    )
    assert set(profiles.values()) == {f"arn:aws:iam::{account}:instance-profile/raysys-worker"}
    assert "ray-autoscaler-v1" not in json.dumps(config)

    head = _policy("aws-head-policy.json")["Statement"]
    actions = {a for s in head for a in _as_list(s["Action"])}
    assert actions == {
        "ec2:DescribeInstances",
        "ec2:RunInstances",
        "ec2:CreateTags",
        "ec2:TerminateInstances",
        "iam:PassRole",
    }
    region, cluster = config["provider"]["region"], config["cluster_name"]
    for s in head:
        assert s["Effect"] == "Allow"
        resources = _as_list(s["Resource"])
        if resources == ["*"]:  # EC2 cannot scope a Describe call
            assert _as_list(s["Action"]) == ["ec2:DescribeInstances"]
            continue
        for arn in resources:
            assert arn.startswith((f"arn:aws:ec2:{region}:", f"arn:aws:iam::{account}:")), arn
            assert arn.split(":")[4] in ("", account), arn
    by_action = {a: s for s in head for a in _as_list(s["Action"]) if a != "ec2:RunInstances"}
    terminate = by_action["ec2:TerminateInstances"]["Condition"]["StringEquals"]
    assert terminate == {
        "ec2:ResourceTag/ray-cluster-name": cluster,
        "ec2:ResourceTag/ray-node-type": "worker",
    }
    launch = [
        s for s in head if "instance/*" in str(s["Resource"]) and s["Action"] == "ec2:RunInstances"
    ]
    assert launch and all(
        s["Condition"]["StringEquals"] == {"aws:RequestTag/ray-cluster-name": cluster}
        for s in launch
    )
    pass_role = by_action["iam:PassRole"]
    assert pass_role["Resource"] == f"arn:aws:iam::{account}:role/raysys-worker"
    assert pass_role["Condition"]["StringEquals"] == {"iam:PassedToService": "ec2.amazonaws.com"}

    storage = _policy("aws-storage-policy.json")["Statement"]
    objects = [s for s in storage if s["Action"] != "s3:ListBucket"]
    (listing,) = [s for s in storage if s["Action"] == "s3:ListBucket"]
    (obj,) = objects
    bucket = listing["Resource"].removeprefix("arn:aws:s3:::")
    prefix = obj["Resource"].removeprefix(f"arn:aws:s3:::{bucket}/").removesuffix("/*")
    assert "*" not in bucket and prefix and "*" not in prefix
    assert set(obj["Action"]) == {
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
    }
    assert listing["Condition"] == {"StringLikeIfExists": {"s3:prefix": [prefix, f"{prefix}/*"]}}
    trust = _policy("aws-ec2-trust.json")["Statement"]
    assert trust == [
        {
            "Sid": trust[0]["Sid"],
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ]


def test_gcp_nodes_run_with_scoped_service_accounts() -> None:
    config = _load(LAUNCHER["gcp"])
    project = config["provider"]["project_id"]
    types = config["available_node_types"]
    emails = {
        n: [a["email"] for a in t["node_config"]["serviceAccounts"]] for n, t in types.items()
    }
    assert emails.pop(config["head_node_type"]) == [
        f"raysys-head@{project}.iam.gserviceaccount.com"
    ]
    assert {e for v in emails.values() for e in v} == {
        f"raysys-worker@{project}.iam.gserviceaccount.com"
    }
    assert "ray-autoscaler-sa-v1" not in json.dumps(config)
    role = yaml.safe_load((IAM / "gcp-head-role.yaml").read_text())
    perms = role["includedPermissions"]
    assert all(p.startswith("compute.") for p in perms), perms  # no storage, no IAM
    assert not [p for p in perms if p.endswith(("setIamPolicy", ".update")) or "firewall" in p]
    assert {"compute.instances.create", "compute.instances.delete"} <= set(perms)
    condition = yaml.safe_load((IAM / "gcp-storage-condition.yaml").read_text())["expression"]
    objects = re.findall(r'startsWith\("projects/_/buckets/([^/"]+)/objects/([^"]+)"\)', condition)
    listing = re.findall(r'objectListPrefix", ""\)\.startsWith\("([^"]+)"\)', condition)
    assert len(objects) == 1 and listing == [objects[0][1]], condition
    assert objects[0][1].endswith("/") and "*" not in condition


# --- KubeRay -------------------------------------------------------------------------------


def _cluster_specs() -> dict[str, dict[str, Any]]:
    return {
        "RayCluster": _load(RAYCLUSTER)["spec"],
        "RayJob.rayClusterSpec": _load(RAYJOB)["spec"]["rayClusterSpec"],
    }


@pytest.mark.parametrize("path", [RAYCLUSTER, RAYJOB], ids=["raycluster", "rayjob"])
def test_kuberay_manifest_has_the_fields_kuberay_requires(path: Path) -> None:
    doc = _load(path)
    assert doc["apiVersion"] == "ray.io/v1"
    assert doc["kind"] == {"raycluster.yaml": "RayCluster", "rayjob.yaml": "RayJob"}[path.name]
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])
    spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
    head = spec["headGroupSpec"]
    for key in KUBERAY_HEAD_REQUIRED:
        assert key in head, f"{path.name}: headGroupSpec.{key} is required"
    assert head["template"]["spec"]["containers"][0]["image"]
    assert spec["workerGroupSpecs"], f"{path.name}: no worker group"
    for group in spec["workerGroupSpecs"]:
        for key in KUBERAY_WORKER_REQUIRED:
            assert key in group, f"{path.name}: workerGroupSpecs[].{key} is required"
        assert group["template"]["spec"]["containers"][0]["image"]
    for params in [
        head["rayStartParams"],
        *(g["rayStartParams"] for g in spec["workerGroupSpecs"]),
    ]:
        bad = {k: v for k, v in params.items() if not isinstance(v, str)}
        assert not bad, f"{path.name}: rayStartParams values must be strings: {bad}"


@pytest.mark.parametrize("which", ["RayCluster", "RayJob.rayClusterSpec"])
def test_kuberay_cluster_as_rays_autoscaler_reads_it(which: str) -> None:
    from ray.autoscaler._private.kuberay.autoscaling_config import (
        _derive_autoscaling_config_from_ray_cr,
    )

    spec = _cluster_specs()[which]
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["autoscalerOptions"]["idleTimeoutSeconds"] > 0
    # The function the autoscaler sidecar runs on the live CR; it ends with validate_config.
    cr = {"metadata": {"name": "raysys", "namespace": "default"}, "spec": copy.deepcopy(spec)}
    node_types = _derive_autoscaling_config_from_ray_cr(cr)["available_node_types"]
    head = node_types.pop("headgroup")
    assert head["resources"].get("GPU", 0) == 0
    # Ray's reading of KubeRay's quoted `resources` string: misquoted, it is lost or raises.
    assert head["resources"].get(DRIVER_RESOURCE, 0) >= 1
    head_limits = spec["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert "nvidia.com/gpu" not in head_limits
    for group in spec["workerGroupSpecs"]:
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert int(limits["nvidia.com/gpu"]) >= 1, group["groupName"]
        node_type = node_types[group["groupName"]]
        assert node_type["resources"]["GPU"] >= 1
        assert node_type["min_workers"] == 0, f"{group['groupName']}: GPU groups scale from 0"
        assert node_type["max_workers"] > 0
        assert DRIVER_RESOURCE not in node_type["resources"]


def _submitter(rayjob: dict[str, Any]) -> dict[str, Any]:
    return rayjob["spec"]["submitterPodTemplate"]["spec"]


def test_rayjob_runs_the_sweep_then_cleans_up(tmp_path: Path) -> None:
    from ray.runtime_env import RuntimeEnv

    rayjob = _load(RAYJOB)
    spec = rayjob["spec"]
    assert re.search(r"python jobs/sweep\.py\b.*\bconfigs/sweep\.yaml\b", spec["entrypoint"])
    assert spec["shutdownAfterJobFinishes"] is True
    assert isinstance(spec["activeDeadlineSeconds"], int) and spec["activeDeadlineSeconds"] > 0
    assert isinstance(spec["ttlSecondsAfterFinished"], int)
    env = yaml.safe_load(spec["runtimeEnvYAML"])
    # The code is the archive the submitter's init container checked, unpacked into a volume
    # the submitter container mounts (`git archive --prefix=raysys/`).
    (fetch,) = _submitter(rayjob)["initContainers"]
    (code_mount,) = fetch["volumeMounts"]
    assert Path(env["working_dir"]).parent == Path(code_mount["mountPath"])
    submitter_mounts = {m["name"]: m for m in _submitter(rayjob)["containers"][0]["volumeMounts"]}
    assert submitter_mounts[code_mount["name"]]["mountPath"] == code_mount["mountPath"]
    (tmp_path / "raysys").mkdir()
    RuntimeEnv(**{**env, "working_dir": str(tmp_path / "raysys")})  # Ray's own validation
    # The embedded cluster is raycluster.yaml's, field for field: one shape to maintain.
    assert spec["rayClusterSpec"] == _load(RAYCLUSTER)["spec"]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def test_rayjob_submits_only_code_whose_hash_it_was_given(tmp_path: Path) -> None:
    """The submitter's init container, run here as written: it serves the archive over HTTP
    from this machine, then unpacks it only with the right SHA-256."""
    (fetch,) = _submitter(_load(RAYJOB))["initContainers"]
    assert fetch["command"] == ["python", "-c"]
    (script,) = fetch["args"]
    (mount,) = fetch["volumeMounts"]
    assert script.count(f'"{mount["mountPath"]}"') == 1
    code = tmp_path / "code"
    script = script.replace(f'"{mount["mountPath"]}"', repr(str(code)))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("raysys/jobs/sweep.py", "print('sweep')\n")
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "raysys-abc.zip").write_bytes(buf.getvalue())
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: _Quiet(*a, directory=str(tmp_path / "www"))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/raysys-abc.zip"
    names = {e["name"] for e in fetch["env"]}
    assert names == {"CODE_URL", "CODE_SHA256"}

    def run(sha: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "CODE_URL": url, "CODE_SHA256": sha}
        return subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
        )

    try:
        bad = run("0" * 64)
        assert bad.returncode != 0 and "not submitting it" in bad.stderr
        assert not code.exists()
        good = run(hashlib.sha256(buf.getvalue()).hexdigest().upper())
        assert good.returncode == 0, good.stderr
    finally:
        server.shutdown()
    assert (code / "raysys" / "jobs" / "sweep.py").read_text() == "print('sweep')\n"


def test_rayjob_pins_what_it_downloads() -> None:
    env = yaml.safe_load(_load(RAYJOB)["spec"]["runtimeEnvYAML"])
    for req in env["pip"]["packages"]:
        assert re.search(r"#sha256=(?:[0-9a-f]{64}|REPLACE-WITH-SHA256-OF-THE-WHEEL)$", req), req
    for path in (RAYCLUSTER, RAYJOB):
        images = re.findall(r"^\s*image:\s*(\S+)", path.read_text(), flags=re.M)
        assert images and all(DIGEST.search(i) for i in images), f"{path.name}: {images}"


def _pods(path: Path) -> dict[str, dict[str, Any]]:
    """Every pod template in a KubeRay file, by a readable name."""
    doc = _load(path)
    spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
    pods = {"head": spec["headGroupSpec"]["template"]}
    pods |= {g["groupName"]: g["template"] for g in spec["workerGroupSpecs"]}
    if doc["kind"] == "RayJob":
        pods["submitter"] = doc["spec"]["submitterPodTemplate"]
    return pods


@pytest.mark.parametrize("path", [RAYCLUSTER, RAYJOB], ids=["raycluster", "rayjob"])
def test_kuberay_pods_run_locked_down(path: Path) -> None:
    doc = _load(path)
    spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
    assert spec["authOptions"] == {"mode": "token"}  # KubeRay's Secret, env on every container
    autoscaler = spec["autoscalerOptions"]
    containers = [("autoscaler", autoscaler, spec["headGroupSpec"]["template"]["spec"])]
    for name, pod in _pods(path).items():
        pod_sc = pod["spec"]["securityContext"]
        assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] != 0, name
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert not pod["spec"].get("hostNetwork") and not pod["spec"].get("hostPID"), name
        for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
            containers.append((f"{name}/{c['name']}", c, pod["spec"]))
    for name, c, pod_spec in containers:
        # KubeRay sets RAY_AUTH_MODE/RAY_AUTH_TOKEN; nothing here may override them.
        assert not {e["name"] for e in c.get("env", [])} & {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"}
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, name
        assert sc["capabilities"] == {"drop": ["ALL"]}, name
        assert sc["readOnlyRootFilesystem"] is True, name
        assert not sc.get("privileged") and sc.get("runAsUser", 1) != 0, name
        # Where Ray writes, an emptyDir of the same pod (KubeRay adds /dev/shm and, on the
        # head, a shared /tmp/ray for the autoscaler's logs).
        volumes = {v["name"]: v for v in pod_spec["volumes"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in c["volumeMounts"]}
        assert all("emptyDir" in v for v in mounts.values()), name
        if c.get("name", "").startswith("ray-") and "submitter" not in c["name"]:
            assert {"/tmp", "/home/ray/.cache"} <= set(mounts), name
        else:
            assert "/tmp" in mounts or "/code" in mounts, name
    assert not re.search(r"hostPath|privileged:\s*true", path.read_text())


@pytest.mark.parametrize("path", [RAYCLUSTER, RAYJOB], ids=["raycluster", "rayjob"])
def test_kuberay_head_takes_connections_only_from_its_cluster_and_labelled_clients(
    path: Path,
) -> None:
    pods = _pods(path)
    policies = {d["metadata"]["name"]: d for d in _docs(path)[1:]}
    assert all(d["kind"] == "NetworkPolicy" for d in policies.values())
    assert all(d["apiVersion"] == "networking.k8s.io/v1" for d in policies.values())
    cluster_labels = pods["head"]["metadata"]["labels"]
    for name, pod in pods.items():
        if name != "submitter":
            assert pod["metadata"]["labels"] == cluster_labels, name
    by_node_type = {
        d["spec"]["podSelector"]["matchLabels"]["ray.io/node-type"]: d for d in policies.values()
    }
    assert len(by_node_type) == len(policies) == 2
    head_policy, worker_policy = by_node_type["head"], by_node_type["worker"]
    for policy in (head_policy, worker_policy):
        selector = dict(policy["spec"]["podSelector"]["matchLabels"])
        selector.pop("ray.io/node-type")  # set by KubeRay on every Ray pod
        assert selector == cluster_labels
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        rules = policy["spec"]["ingress"]
        # An empty `from` or an empty rule would let every pod in.
        assert all(r.get("from") for r in rules)
        # The cluster's own pods, on every port (GCS, raylets, object managers, workers).
        assert rules[0] == {"from": [{"podSelector": {"matchLabels": cluster_labels}}]}
    assert len(worker_policy["spec"]["ingress"]) == 1
    allowed = {6379, 8265, 10001}
    for rule in head_policy["spec"]["ingress"][1:]:
        ports = {p["port"] for p in rule["ports"]}
        assert ports and ports <= allowed, rule
        for peer in rule["from"]:
            # Every other peer is named by a label you set on purpose (or the operator's).
            assert peer.get("podSelector", {}).get("matchLabels"), peer
            assert "ipBlock" not in peer
    if "submitter" in pods:  # the RayJob's submitter is one of the labelled clients
        labels = pods["submitter"]["metadata"]["labels"]
        assert any(
            peer == {"podSelector": {"matchLabels": labels}}
            for rule in head_policy["spec"]["ingress"][1:]
            if {p["port"] for p in rule["ports"]} >= {8265}
            for peer in rule["from"]
        )


# --- versions ------------------------------------------------------------------------------


def test_cluster_files_pin_the_ray_version_of_pyproject() -> None:
    ray = _ray_pin()
    for path in [*LAUNCHER.values(), RAYCLUSTER, RAYJOB]:
        text = path.read_text()
        images = re.findall(r"rayproject/ray(?:-ml)?:([^\s\"']+)", text)
        assert images, f"{path.name}: names no rayproject/ray image"
        for tag in images:
            assert tag.split("-")[0] == ray, f"{path.name}: image tag {tag}, pyproject ray=={ray}"
        pins = re.findall(r"[\"']ray(?:\[[^\]]*\])?==([^\"']+)[\"']", text)
        for version in pins:
            assert version == ray, f"{path.name}: pip pins ray=={version}, pyproject {ray}"
        if path in (RAYCLUSTER, RAYJOB):
            versions = re.findall(r"rayVersion:\s*[\"']?([^\"'\s]+)", text)
            assert versions and set(versions) == {ray}, f"{path.name}: rayVersion {versions}"
        else:
            assert pins, f"{path.name}: setup_commands must pin ray=={ray}"


def test_gpu_nodes_install_raysys_with_the_pinned_vllm_extra() -> None:
    vllm = _pyproject()["project"]["optional-dependencies"]["vllm"]
    assert any(Requirement(r).name == "vllm" and "==" in r for r in vllm), vllm
    quoted = r"[\"'](raysys\[[^\]]*\][^\"']*)[\"']"  # "raysys[...] @ URL" in a shell command
    sources = {
        path.name: re.findall(quoted, " ".join(_load(path)["setup_commands"]))
        for path in LAUNCHER.values()
    }
    env = yaml.safe_load(_load(RAYJOB)["spec"]["runtimeEnvYAML"])
    sources["rayjob.yaml"] = [p for p in env["pip"]["packages"] if p.startswith("raysys")]
    for name, found in sources.items():
        reqs = [Requirement(r) for r in found]
        assert reqs, f"{name}: installs no raysys[...] requirement"
        assert all("vllm" in r.extras for r in reqs), f"{name}: raysys without the vllm extra"


# --- runtime env and .rayignore ------------------------------------------------------------


def test_runtime_env_file_is_what_ray_job_submit_accepts() -> None:
    from ray.dashboard.modules.dashboard_sdk import parse_runtime_env_args
    from ray.runtime_env import RuntimeEnv

    env = parse_runtime_env_args(runtime_env=str(RUNTIME_ENV), working_dir=".")
    RuntimeEnv(**env)
    assert env["working_dir"] == "."
    assert all(isinstance(v, str) for v in env["env_vars"].values())
    assert env["excludes"] == _ignore_patterns(), "runtime_env.yaml excludes != .rayignore"


def _fake_checkout(root: Path) -> None:
    files = [
        ".venv/lib/python3.11/site-packages/torch/big.so",
        ".venv-cpu/pyvenv.cfg",
        ".git/HEAD",
        "runs/sweep/20260101/results.parquet",
        "raysys/__init__.py",
        "raysys/__pycache__/config.cpython-311.pyc",
        "raysys/sweep/runs.py",
        "jobs/sweep.py",
        "configs/sweep.yaml",
        "configs/fixtures/tiny.parquet",
        "scratch.parquet",
        "model.safetensors",
        ".pytest_cache/v/cache/lastfailed",
        "raysys.egg-info/PKG-INFO",
    ]
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")


@pytest.mark.parametrize("rules", [".rayignore", "runtime_env excludes"])
def test_working_dir_package_leaves_out_venv_runs_and_data(tmp_path: Path, rules: str) -> None:
    from ray._private.runtime_env.packaging import create_package

    tree = tmp_path / "checkout"
    _fake_checkout(tree)
    excludes: list[str] = []
    if rules == ".rayignore":
        shutil.copy(RAYIGNORE, tree / ".rayignore")
    else:
        excludes = _load(RUNTIME_ENV)["excludes"]
    # Neither .gitignore nor Ray's default excludes: the rules under test stand alone.
    create_package(str(tree), tmp_path / "pkg.zip", include_gitignore=False, excludes=excludes)
    names = {n for n in zipfile.ZipFile(tmp_path / "pkg.zip").namelist() if not n.endswith("/")}
    expected = {
        "raysys/__init__.py",
        "raysys/sweep/runs.py",
        "jobs/sweep.py",
        "configs/sweep.yaml",
        "configs/fixtures/tiny.parquet",
    }
    assert names - {".rayignore"} == expected


def test_this_repo_packs_small_without_its_venv() -> None:
    from ray._private.runtime_env.packaging import _dir_travel, _get_excludes

    total = 0
    packed: list[Path] = []

    def add(path: Path) -> None:
        nonlocal total
        if path.is_file():
            packed.append(path.relative_to(REPO))
            total += path.stat().st_size
            if total > MAX_PACKAGE_BYTES:  # stop early: never walk all of a stray .venv
                raise AssertionError(f"working-dir package > {MAX_PACKAGE_BYTES} B at {path}")

    # Ray's own walk with .rayignore alone (no .gitignore, no default excludes).
    _dir_travel(REPO, [_get_excludes(REPO, [])], add, include_gitignore=False)
    assert Path("jobs/train.py") in packed and Path("pyproject.toml") in packed
    assert not [p for p in packed if p.parts[0] in {".venv", ".git", "runs"}]
