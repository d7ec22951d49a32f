"""The cluster files (cluster/, .rayignore) checked with Ray's own code: the launcher schema,
the KubeRay autoscaler's reading of a RayCluster, runtime-env parsing and working-dir
packaging. Plus the pins that must match pyproject.toml. No cluster is started."""

from __future__ import annotations

import copy
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
LAUNCHER = {"aws": CLUSTER / "aws.yaml", "gcp": CLUSTER / "gcp.yaml"}
RAYCLUSTER = CLUSTER / "kuberay" / "raycluster.yaml"
RAYJOB = CLUSTER / "kuberay" / "rayjob.yaml"
RUNTIME_ENV = CLUSTER / "runtime_env.yaml"
RAYIGNORE = ROOT / ".rayignore"
DRIVER_RESOURCE = "raysys_driver"  # sweep.driver_resource in the sweep configs
MAX_PACKAGE_BYTES = 20 * 2**20  # the working-dir package is code and configs only

# Fields KubeRay's ray.io/v1 Go types declare without `omitempty`
# (ray-project/kuberay ray-operator/apis/ray/v1/raycluster_types.go).
KUBERAY_HEAD_REQUIRED = ("rayStartParams", "template")
KUBERAY_WORKER_REQUIRED = ("groupName", "minReplicas", "maxReplicas", "rayStartParams", "template")


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _pyproject() -> dict[str, Any]:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python >= 3.11")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


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


def test_rayjob_runs_the_sweep_then_cleans_up() -> None:
    from ray.runtime_env import RuntimeEnv

    spec = _load(RAYJOB)["spec"]
    assert re.search(r"python jobs/sweep\.py\b.*\bconfigs/sweep\.yaml\b", spec["entrypoint"])
    assert spec["shutdownAfterJobFinishes"] is True
    assert isinstance(spec["activeDeadlineSeconds"], int) and spec["activeDeadlineSeconds"] > 0
    assert isinstance(spec["ttlSecondsAfterFinished"], int)
    env = yaml.safe_load(spec["runtimeEnvYAML"])
    RuntimeEnv(**env)  # Ray's own validation of the runtime env fields
    assert re.match(r"(https?|s3|gs)://.+\.zip$", env["working_dir"]), env["working_dir"]
    # The embedded cluster is raycluster.yaml's, field for field: one shape to maintain.
    assert spec["rayClusterSpec"] == _load(RAYCLUSTER)["spec"]


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
            packed.append(path.relative_to(ROOT))
            total += path.stat().st_size
            if total > MAX_PACKAGE_BYTES:  # stop early: never walk all of a stray .venv
                raise AssertionError(f"working-dir package > {MAX_PACKAGE_BYTES} B at {path}")

    # Ray's own walk with .rayignore alone (no .gitignore, no default excludes).
    _dir_travel(ROOT, [_get_excludes(ROOT, [])], add, include_gitignore=False)
    assert Path("jobs/train.py") in packed and Path("pyproject.toml") in packed
    assert not [p for p in packed if p.parts[0] in {".venv", ".git", "runs"}]
