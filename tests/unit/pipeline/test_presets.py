"""The quickstart presets (`raysys.pipeline.presets`) ship inside the package and load."""

from __future__ import annotations

import pytest

from raysys.config import PipelineConfig, load_config
from raysys.errors import UserError
from raysys.pipeline.presets import PRESETS, preset_path


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_is_a_valid_pipeline_config_in_the_package(name):
    import raysys

    path = preset_path(name)
    assert path.is_file() and path.name == f"{name}.yaml"
    assert path.is_relative_to(next(iter(raysys.__path__)))
    cfg = load_config(PipelineConfig, path)
    assert cfg.sweep is not None and cfg.pipeline.tasks


def test_the_embedded_preset_is_the_small_cpu_study():
    cfg = load_config(PipelineConfig, preset_path("embedded"))
    assert cfg.model.source == "smollm2-135m-instruct" and cfg.generate.engine == "hf"
    assert cfg.pipeline.train_size == 16 and cfg.sweep.fractions == [0.5, 1.0]


def test_an_unknown_preset_is_refused_with_the_choices():
    with pytest.raises(
        UserError, match=r"--preset: unknown preset 'big'; choose one of embedded, full"
    ):
        preset_path("big")
