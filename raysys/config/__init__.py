"""Typed configs: YAML files plus `a.b=c` overrides, validated by pydantic v2.

Every error is one line that names the field path and the fix, raised as `ConfigError`
(the CLI exits with code 2 and writes nothing). `loader` reads, `sections`/`training`/
`study` are the sections, `kinds` the one config per job; whether the tasks a config
names exist is checked a layer up, by `raysys.tasks.checks`.
"""

from raysys.config.kinds import (
    CONFIG_KINDS,
    EvalConfig,
    PipelineConfig,
    SweepConfig,
    SynthConfig,
    TrainConfig,
)
from raysys.config.loader import (
    DuplicateKeyError,
    YamlShapeError,
    dump_config,
    load_config,
    load_yaml_text,
    read_yaml_file,
    resolve_run_id,
    with_run_id,
)
from raysys.config.paths import cocktail_paths, file_path, task_path
from raysys.config.sections import (
    MAX_ROWS,
    MAX_SEED,
    CostSection,
    EvalSection,
    GenerateSection,
    ModelSection,
    RaySection,
    RunSection,
    Section,
    SynthSection,
    TaskSection,
    share_problem,
    storage_problem,
)
from raysys.config.study import (
    COCKTAIL_GENERATORS,
    ContaminationSection,
    DpoGateSection,
    MlflowSection,
    PipelineSection,
    PipelineStages,
    SearchBudget,
    SearchSection,
    SweepSection,
    SynthTaskEntry,
    synth_ref,
)
from raysys.config.training import (
    STUDY_LORA_RANK,
    DataSection,
    DpoSection,
    LoraSection,
    TrainSection,
)

__all__ = [
    "CONFIG_KINDS",
    "COCKTAIL_GENERATORS",
    "ContaminationSection",
    "CostSection",
    "MAX_ROWS",
    "MAX_SEED",
    "STUDY_LORA_RANK",
    "DataSection",
    "DpoGateSection",
    "DpoSection",
    "DuplicateKeyError",
    "EvalConfig",
    "EvalSection",
    "GenerateSection",
    "LoraSection",
    "MlflowSection",
    "ModelSection",
    "PipelineConfig",
    "PipelineSection",
    "PipelineStages",
    "RaySection",
    "RunSection",
    "Section",
    "SweepConfig",
    "SearchBudget",
    "SearchSection",
    "SweepSection",
    "SynthConfig",
    "SynthSection",
    "SynthTaskEntry",
    "TaskSection",
    "TrainConfig",
    "TrainSection",
    "YamlShapeError",
    "cocktail_paths",
    "dump_config",
    "file_path",
    "load_config",
    "load_yaml_text",
    "read_yaml_file",
    "resolve_run_id",
    "share_problem",
    "storage_problem",
    "synth_ref",
    "task_path",
    "with_run_id",
]
