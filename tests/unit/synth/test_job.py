"""`raysys synth CONFIG` (`raysys.synth.job`): the labeler adapter is checked first, and
a bad one is refused before anything is written or Ray starts. Labeling:
tests/integration/test_synth.py."""

from __future__ import annotations

import pytest

from raysys.config import SynthConfig, load_config
from raysys.errors import UserError
from raysys.synth.job import labeler, run_synth_job
from tests.fixtures import REPO


def test_no_adapter_means_the_base_model_labels():
    assert labeler(None) == {} and labeler("") == {}


def test_an_adapter_is_named_synth_and_resolved(tmp_path):
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / "adapter_config.json").write_text("{}")
    assert labeler(str(tmp_path / "sft" / ".." / "sft")) == {"synth": str(tmp_path / "sft")}


def test_a_folder_that_is_not_an_adapter_is_refused(tmp_path):
    with pytest.raises(UserError, match=r"synth.adapter: .* is not a PEFT adapter dir"):
        labeler(str(tmp_path))


def test_a_bad_labeler_is_refused_before_anything_is_written(tmp_path, tiny_model, no_ray):

    storage = tmp_path / "runs"
    cfg = load_config(
        SynthConfig,
        REPO / "configs" / "synth.yaml",
        [
            f"run.storage_path={storage}",
            "model.source=tiny-random",
            f"synth.adapter={tmp_path}",
            "ray.num_cpus=2",
        ],
    )
    with pytest.raises(UserError, match=r"synth.adapter: .* is not a PEFT adapter dir"):
        run_synth_job(cfg)
    assert not storage.exists()
