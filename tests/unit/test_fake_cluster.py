"""cluster/fake_multinode.py's cluster config, derived from the launcher recipes, checked
against the recipes and with Ray's own config code (the schema, the defaults the autoscaler
fills in, autoscaler v2's reading of node types); no Ray is started."""

from __future__ import annotations

import pytest
import yaml

from tests.fixtures import REPO, fake_multinode

fm = fake_multinode()
pytestmark = pytest.mark.usefixtures("no_ray")
RECIPES = [REPO / "cluster" / "aws.yaml", REPO / "cluster" / "gcp.yaml"]


@pytest.fixture(params=RECIPES, ids=lambda p: p.name)
def derived(request):
    launcher = yaml.safe_load(request.param.read_text())
    return launcher, fm.fake_config(launcher, cpus=1, max_workers=2, idle_timeout_minutes=0.25)


def test_the_node_types_are_the_recipes_with_their_custom_resources_labels_and_priorities(
    derived,
):
    launcher, fake = derived
    real = launcher["available_node_types"]
    head = launcher["head_node_type"]
    types = fake["available_node_types"]
    # the fake provider calls its head ray.head.default; the recipe's head type is it
    assert fake["head_node_type"] == fm.FAKE_HEAD_NODE_TYPE == "ray.head.default"
    assert set(types) == set(real) - {head} | {fm.FAKE_HEAD_NODE_TYPE}
    for name, spec in types.items():
        src = real[head if name == fm.FAKE_HEAD_NODE_TYPE else name]
        custom = lambda r: {k: v for k, v in r.items() if k not in ("CPU", "GPU")}  # noqa: E731
        extra = {"object_store_memory"} if name != fm.FAKE_HEAD_NODE_TYPE else set()
        assert set(custom(spec["resources"])) - extra == set(custom(src["resources"]))
        assert custom(spec["resources"]).items() >= custom(src["resources"]).items()
        assert "GPU" not in spec["resources"]  # no GPU here: the GPU types run CPU-only
        assert spec.get("labels") == src.get("labels")
        assert spec.get("priority") == src.get("priority")
        assert spec["min_workers"] == 0 and spec["node_config"] == {}
    assert types["ray.head.default"]["resources"]["raysys_driver"] == 100
    assert types["ray.head.default"]["resources"]["CPU"] == 0  # training needs a worker node


def test_it_is_scaled_down_to_this_machine(derived):
    launcher, fake = derived
    types = fake["available_node_types"]
    workers = {k: v for k, v in types.items() if k != fm.FAKE_HEAD_NODE_TYPE}
    assert workers and all(w["resources"]["CPU"] == 1 for w in workers.values())
    assert all(1 <= w["max_workers"] <= 2 for w in workers.values())
    assert types[fm.FAKE_HEAD_NODE_TYPE]["max_workers"] == 0
    assert fake["max_workers"] == 2 <= launcher["max_workers"]
    assert fake["idle_timeout_minutes"] == 0.25 < launcher["idle_timeout_minutes"]
    assert fake["upscaling_speed"] == launcher["upscaling_speed"]
    for cloud_only in ("setup_commands", "head_start_ray_commands", "file_mounts", "docker"):
        assert not fake[cloud_only], cloud_only
    two = fm.fake_config(launcher, cpus=2)
    assert {v["resources"]["CPU"] for k, v in two["available_node_types"].items()} == {0, 2}


def test_rays_autoscaler_reads_it_as_the_fake_multinode_provider(derived, monkeypatch):
    from ray.autoscaler._private.fake_multi_node.node_provider import FakeMultiNodeProvider
    from ray.autoscaler._private.providers import _get_node_provider_cls
    from ray.autoscaler._private.util import prepare_config, validate_config
    from ray.autoscaler.v2.instance_manager.config import AutoscalingConfig

    _, fake = derived
    validate_config(fake)  # the launcher schema
    assert _get_node_provider_cls(fake["provider"]) is FakeMultiNodeProvider
    prepared = prepare_config(fake)  # what the monitor does first (defaults filled in)
    assert prepared["available_node_types"] == fake["available_node_types"]
    v2 = AutoscalingConfig(fake, skip_content_hash=True)  # autoscaler v2's reading
    assert v2.get_head_node_type() == fm.FAKE_HEAD_NODE_TYPE
    assert v2.get_idle_timeout_s() == 15
    groups = v2.get_node_type_configs()
    assert groups["gpu_spot"].priority > groups["gpu_ondemand"].priority  # spot first
    assert groups["gpu_spot"].labels == {"raysys/market": "spot"}
    assert all(g.min_worker_nodes == 0 for g in groups.values())


def test_the_provider_is_named_fake_multinode_where_this_ray_ships_its_defaults():
    """Ray 2.60.0's wheel lacks fake_multi_node/example.yaml, which the autoscaler reads
    for `type: fake_multinode` (its monitor dies with FileNotFoundError); the same class
    as an `external` module runs instead. A Ray that ships the file gets the real name."""
    from pathlib import Path

    import ray.autoscaler._private.fake_multi_node as fake
    from ray.autoscaler._private.providers import _get_default_config

    shipped = (Path(fake.__file__).parent / "example.yaml").is_file()
    provider = fm.fake_provider()
    assert provider["type"] == ("fake_multinode" if shipped else "external")
    if not shipped:
        with pytest.raises(FileNotFoundError, match="example.yaml"):
            _get_default_config({"type": "fake_multinode"})
