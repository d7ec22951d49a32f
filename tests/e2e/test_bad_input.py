"""Bad input (issue #10): every case is refused by the `raysys` CLI with exit code 2 and
one line on stderr that names the field or file and the fix, before Ray starts and
before anything is written.

Each case runs in-process (`raysys.cli.main`) with the working directory set to an
empty folder that also holds `run.storage_path`, so a stray write anywhere relative
(a `./runs`, an `ftp:` folder made from an unparsed URI) is caught too. Ray is fenced
off: `init_ray` and `ray.init` fail the case if anything tries to start it.

Inputs live in a separate folder; `{in}` and `{runs}` in a case's argv stand for it
and for the storage path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from raysys.cli import main
from tests.fixtures import REPO, error_lines

GOOD_ROWS = [
    {
        "messages": [
            {"role": "user", "content": f"Tone of headline {i}?"},
            {"role": "assistant", "content": "Answer: positive"},
        ]
    }
    for i in range(8)
]
LONG_ROW = [
    {
        "messages": [
            {"role": "user", "content": "Summarise the quarter. " + "revenue grew again " * 60},
            {"role": "assistant", "content": "Answer: positive"},
        ]
    }
]
# Far past the tiny model's 1024 positions (about 2.4k tokens).
HUGE_ROW = [
    {
        "messages": [
            {"role": "user", "content": "Summarise. " + "revenue grew again " * 600},
            {"role": "assistant", "content": "Answer: positive"},
        ]
    }
]
MESSAGES_TYPE = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
EMPTY = pa.table({"messages": pa.array([], type=MESSAGES_TYPE)})
NO_MESSAGES = pa.table({"text": ["a", "b"], "label": ["positive", "negative"]})

COCKTAIL_OK = {"name": "ok", "components": [{"task": "news_sentiment", "weight": 1}]}


def _task_yaml(name: str, **over: Any) -> str:
    spec = {
        "name": name,
        "kind": "classification",
        "labels": ["positive", "negative", "neutral"],
        "prompt": "Tone?\n{input}\nEnd with 'Answer: <tone>'.",
        "source": {"format": "csv", "splits": {"test": f"{name}.csv"}},
        "columns": {"input": "headline", "gold": "tone"},
    }
    spec.update(over)
    return yaml.safe_dump(spec)


def _cocktail(**over: Any) -> str:
    return yaml.safe_dump({**COCKTAIL_OK, **over})


TRAIN = ["train", "model.source=tiny-random", "run.storage_path={runs}"]
TRAIN_OK = [*TRAIN, "data.path={in}/good.parquet"]
EVAL = ["eval", "model.source=tiny-random", "run.storage_path={runs}"]
SWEEP = [
    "sweep",
    "model.source=tiny-random",
    "run.storage_path={runs}",
    "sweep.tasks=[news_sentiment]",
    "sweep.train_size=8",
]
# argparse stops taking overrides after an option: options go first.
SWEEP_DRY = [SWEEP[0], "--dry-run", *SWEEP[1:]]
CSV_OK = "headline,tone\nShares jump,positive\nProfit falls,negative\n"


@dataclass(frozen=True)
class Case:
    id: str
    argv: list[str]
    expect: tuple[str, ...]  # substrings of the message: the field or file, and the fix
    files: dict[str, Any] = field(default_factory=dict)  # name -> str | bytes | pa.Table


CASES = [
    # --- config files and overrides
    Case(
        "unknown-config-key",
        [*TRAIN_OK, "train.learning_rat=1e-4"],
        ("train.learning_rat: unknown key", "allowed keys here: method, learning_rate"),
        {"good.parquet": pa.Table.from_pylist(GOOD_ROWS)},
    ),
    Case(
        "wrong-type",
        [*TRAIN_OK, "train.epochs=many"],
        ("train.epochs", "valid number", "'many'"),
        {"good.parquet": pa.Table.from_pylist(GOOD_ROWS)},
    ),
    Case(
        "yaml-syntax-error",
        ["train", "{in}/bad.yaml", "run.storage_path={runs}"],
        ("bad.yaml line 3", "fix the YAML syntax"),
        {"bad.yaml": "train:\n  epochs: 1\n   batch_size: [8\n"},
    ),
    Case(
        "yaml-duplicate-key",
        ["train", "{in}/dup.yaml", "run.storage_path={runs}", "data.path={in}/good.parquet"],
        ("dup.yaml line 5", "'learning_rate' is given twice (also on line 4)", "keep one"),
        {
            "dup.yaml": "model:\n  source: tiny-random\ntrain:\n  learning_rate: 1.0e-4\n"
            "  learning_rate: 5.0e-3\n",
            "good.parquet": pa.Table.from_pylist(GOOD_ROWS),
        },
    ),
    Case(
        "yaml-duplicate-section",
        ["validate", "--kind", "eval", "{in}/dup.yaml"],
        ("dup.yaml line 3", "'eval' is given twice"),
        {"dup.yaml": "eval:\n  split: test\neval:\n  split: validation\n"},
    ),
    Case(
        "config-not-utf8",
        ["train", "{in}/latin1.yaml", "run.storage_path={runs}"],
        ("latin1.yaml", "not UTF-8", "save it as UTF-8"),
        {"latin1.yaml": "run:\n  name: caf\xe9\n".encode("latin-1")},
    ),
    Case(
        "missing-config-file",
        ["eval", "{in}/nope.yaml", "run.storage_path={runs}"],
        ("config file not found", "nope.yaml", "pass the path of a YAML file"),
    ),
    Case(
        "unknown-config-kind",
        ["validate", "--kind", "trian", "{in}/empty.yaml"],
        ("--kind: unknown config kind 'trian'", "choose one of quickstart, train"),
        {"empty.yaml": ""},
    ),
    # --- tasks, models, splits
    Case(
        "unknown-task",
        [*EVAL, "eval.tasks=[news_sentimnet]"],
        ("eval.tasks", "unknown task 'news_sentimnet'", "choose one of"),
    ),
    Case(
        "unknown-model-alias",
        ["quickstart", "model.source=smollm3-tiny", "run.storage_path={runs}"],
        ("model.source: unknown model 'smollm3-tiny'", "use one of"),
    ),
    Case(
        "test-only-task-trained",
        ["quickstart", "pipeline.tasks=[fomc_stance]", "run.storage_path={runs}"],
        ("pipeline.tasks: fomc_stance has no training data", "move it to pipeline.synth_tasks"),
    ),
    Case(
        "test-only-task-in-cocktail",
        ["data", "mix", "{in}/c.yaml", "--storage", "{runs}"],
        ("cocktail.components[0].task", "fomc_stance has only a test split"),
        {"c.yaml": _cocktail(components=[{"task": "fomc_stance", "weight": 1}])},
    ),
    Case(
        "test-only-task-in-sweep",
        [*SWEEP_DRY, "sweep.tasks=[news_sentiment,fomc_stance]"],
        ("sweep.tasks: fomc_stance has only a test split", "move it to sweep.eval_tasks"),
    ),
    Case(
        "eval-split-unknown",
        [*EVAL, "eval.split=dev"],
        ("eval.split", "'train', 'validation' or 'test'", "'dev'"),
    ),
    Case(
        "eval-split-task-lacks",
        [*EVAL, "eval.tasks=[fomc_stance]", "eval.split=validation"],
        ("fomc_stance has only the split(s) test", "it has no validation"),
    ),
    # --- custom (YAML) tasks and their files
    Case(
        "task-regex-does-not-compile",
        [*EVAL, "eval.tasks=[{in}/t1.yaml]"],
        ("t1.yaml: answer_regex", "does not compile"),
        {"t1.yaml": _task_yaml("bi_t1", answer_regex="Answer: ([a-z]+"), "bi_t1.csv": CSV_OK},
    ),
    Case(
        "task-regex-no-group",
        [*EVAL, "eval.tasks=[{in}/t2.yaml]"],
        ("t2.yaml: answer_regex", "exactly one capture group"),
        {"t2.yaml": _task_yaml("bi_t2", answer_regex=r"Answer: \w+"), "bi_t2.csv": CSV_OK},
    ),
    Case(
        "task-regex-catastrophic",
        [*EVAL, "eval.tasks=[{in}/t3.yaml]"],
        ("t3.yaml: answer_regex", "nested repeat", "backtrack"),
        {
            "t3.yaml": _task_yaml("bi_t3", answer_regex=r"Answer:((?:\s*\w+)+)$"),
            "bi_t3.csv": CSV_OK,
        },
    ),
    Case(
        "task-file-missing-column",
        [*EVAL, "eval.tasks=[{in}/t4.yaml]"],
        ("column 'tone' not in split test", "set columns.input / columns.gold"),
        {"t4.yaml": _task_yaml("bi_t4"), "bi_t4.csv": "headline,label\nShares jump,positive\n"},
    ),
    Case(
        "task-file-empty",
        [*EVAL, "eval.tasks=[{in}/t5.yaml]"],
        ("task bi_t5: split test (bi_t5.csv) holds no usable rows",),
        {"t5.yaml": _task_yaml("bi_t5"), "bi_t5.csv": "headline,tone\n"},
    ),
    Case(
        "task-file-not-utf8",
        [*EVAL, "eval.tasks=[{in}/t6.yaml]"],
        ("bi_t6.csv line 2", "not UTF-8", "set source.encoding (e.g. latin-1"),
        {
            "t6.yaml": _task_yaml("bi_t6"),
            "bi_t6.csv": "headline,tone\nCaf\xe9 chain beats,positive\n".encode("latin-1"),
        },
    ),
    Case(
        "task-yaml-duplicate-key",
        [*EVAL, "eval.tasks=[{in}/t7.yaml]"],
        ("t7.yaml line", "'kind' is given twice"),
        {"t7.yaml": _task_yaml("bi_t7") + "kind: numeric\n", "bi_t7.csv": CSV_OK},
    ),
    Case(
        "numeric-task-gold-not-a-number",
        [*EVAL, "eval.tasks=[{in}/t8.yaml]"],
        ("task bi_t8: bi_t8.csv row 3", "'n/a' is not a number", "kind: freetext"),
        {
            "t8.yaml": _task_yaml("bi_t8", kind="numeric", labels=[]),
            "bi_t8.csv": "headline,tone\nGrowth?,12.5\nMargin?,n/a\n",
        },
    ),
    # --- cocktails and data fractions
    Case(
        "cocktail-negative-weight",
        ["data", "mix", "{in}/c.yaml", "--storage", "{runs}"],
        ("cocktail.components[0].weight", "must be a finite number >= 0, got -1.0"),
        {"c.yaml": _cocktail(components=[{"task": "news_sentiment", "weight": -1}])},
    ),
    Case(
        "cocktail-all-zero-weights",
        ["data", "mix", "{in}/c.yaml", "--storage", "{runs}"],
        ("cocktail.components", "all weights are 0", "give at least one task a weight > 0"),
        {
            "c.yaml": _cocktail(
                components=[
                    {"task": "news_sentiment", "weight": 0},
                    {"task": "price_direction", "weight": 0.0},
                ]
            )
        },
    ),
    Case(
        "cocktail-non-numeric-weight",
        ["data", "mix", "{in}/c.yaml", "--storage", "{runs}"],
        ("cocktail.components[0].weight", "valid number", "'lots'"),
        {"c.yaml": _cocktail(components=[{"task": "news_sentiment", "weight": "lots"}])},
    ),
    Case(
        "regulariser-share-is-1",
        ["data", "mix", "{in}/c.yaml", "--storage", "{runs}"],
        ("cocktail.general", "share must be in [0, 1), got 1.0"),
        {"c.yaml": _cocktail(general=1.0)},
    ),
    Case(
        "regulariser-shares-sum-to-1",
        ["data", "mix", "{in}/c.yaml", "--storage", "{runs}"],
        ("cocktail.general", "general + math must be < 1", "lower one of them"),
        {"c.yaml": _cocktail(general=0.5, math=0.5)},
    ),
    Case(
        "regulariser-share-in-sweep",
        [*SWEEP_DRY, "sweep.general=[0,1.5]"],
        ("sweep.general", "share must be in [0, 1), got 1.5"),
    ),
    Case(
        "data-fraction-zero",
        ["data", "mix", "{in}/c.yaml", "--fraction", "0", "--storage", "{runs}"],
        ("--fraction must be in (0, 1], got 0.0",),
        {"c.yaml": _cocktail()},
    ),
    Case(
        "data-fraction-negative",
        [*TRAIN, "data.cocktail={in}/c.yaml", "data.fraction=-0.5"],
        ("data.fraction", "greater than 0", "-0.5"),
        {"c.yaml": _cocktail()},
    ),
    Case(
        "data-fraction-above-1",
        [*SWEEP_DRY, "sweep.fractions=[0.5,1.5]"],
        ("sweep.fractions", "fraction 1.5 must be in (0, 1]"),
    ),
    Case(
        "cocktail-yaml-syntax-error-in-train",
        [*TRAIN, "data.cocktail={in}/c.yaml"],
        ("c.yaml", "fix the YAML syntax"),
        {"c.yaml": "name: x\ncomponents: [{task: news_sentiment\n"},
    ),
    Case(
        "cocktail-yaml-duplicate-key",
        ["data", "mix", "{in}/c.yaml", "--storage", "{runs}"],
        ("c.yaml", "'weight' is given twice"),
        {"c.yaml": "components:\n  - task: news_sentiment\n    weight: 1\n    weight: -1\n"},
    ),
    # --- training data
    Case(
        "train-data-missing-columns",
        [*TRAIN, "data.path={in}/rows.parquet"],
        ("rows.parquet: sft rows need column(s) messages", "point data.path at sft rows"),
        {"rows.parquet": NO_MESSAGES},
    ),
    Case(
        "train-data-empty",
        [*TRAIN, "data.path={in}/empty.parquet"],
        ("empty.parquet holds no training rows", "check the task sizes"),
        {"empty.parquet": EMPTY},
    ),
    Case(
        "train-data-missing-file",
        [*TRAIN, "data.path={in}/nope.parquet"],
        ("data.path:", "nope.parquet not found", "point it at a training parquet"),
    ),
    Case(
        "row-longer-than-max-seq-length",
        [*TRAIN, "data.path={in}/long.parquet", "train.max_seq_length=64"],
        ("1 of 1 rows lose their EOS", "(first: row #0", "raise train.max_seq_length"),
        {"long.parquet": pa.Table.from_pylist(LONG_ROW)},
    ),
    Case(
        "row-longer-than-model-context",
        [*TRAIN, "data.path={in}/huge.parquet", "train.max_seq_length=8192"],
        ("max_position_embeddings", "1024", "train.max_seq_length"),
        {"huge.parquet": pa.Table.from_pylist(HUGE_ROW)},
    ),
    # --- sizes and resources
    Case(
        "lora-rank-zero",
        [*TRAIN_OK, "train.lora.r=0"],
        ("train.lora.r", "greater than or equal to 1"),
        {"good.parquet": pa.Table.from_pylist(GOOD_ROWS)},
    ),
    Case(
        "lora-rank-zero-in-sweep",
        [*SWEEP_DRY, "sweep.lora_ranks=[8,0]"],
        ("sweep.lora_ranks", "LoRA ranks must be >= 1"),
    ),
    Case(
        "batch-size-zero",
        [*TRAIN_OK, "train.batch_size=0"],
        ("train.batch_size", "greater than or equal to 1"),
        {"good.parquet": pa.Table.from_pylist(GOOD_ROWS)},
    ),
    Case(
        "generate-batch-size-zero",
        [*EVAL, "generate.batch_size=0"],
        ("generate.batch_size", "greater than or equal to 1"),
    ),
    Case(
        "max-new-tokens-zero",
        [*EVAL, "generate.max_new_tokens=0"],
        ("generate.max_new_tokens", "greater than or equal to 1"),
    ),
    Case(
        "more-workers-than-local-ray",
        [
            *TRAIN_OK,
            "ray.num_cpus=2",
            "train.num_workers=4",
            "train.per_device_batch_size=2",
            "train.batch_size=8",
        ],
        ("train.num_workers x train.cpus_per_worker = 4 CPUs", "raise ray.num_cpus"),
        {"good.parquet": pa.Table.from_pylist(GOOD_ROWS)},
    ),
    Case(
        "more-workers-than-local-ray-quickstart",
        [
            "quickstart",
            "model.source=tiny-random",
            "run.storage_path={runs}",
            "ray.num_cpus=1",
            "train.num_workers=4",
            "train.per_device_batch_size=2",
        ],
        ("train.num_workers x train.cpus_per_worker = 4 CPUs", "raise ray.num_cpus"),
    ),
    Case(
        "more-workers-than-local-ray-sweep",
        [
            *SWEEP,
            "ray.num_cpus=2",
            "train.num_workers=3",
            "train.per_device_batch_size=2",
            "train.batch_size=6",
        ],
        ("train.num_workers x train.cpus_per_worker = 3 CPUs", "raise ray.num_cpus"),
    ),
    Case(
        "engine-actor-bigger-than-local-ray",
        [*EVAL, "ray.num_cpus=2", "generate.engine=hf", "generate.num_cpus=3"],
        ("generate.num_cpus=3 per engine actor", "no actor could ever start"),
    ),
    Case(
        "engine-actor-bigger-than-local-ray-pipeline",
        [
            "quickstart",
            "model.source=tiny-random",
            "run.storage_path={runs}",
            "ray.num_cpus=1",
            "generate.num_cpus=2",
        ],
        ("generate.num_cpus=2 per engine actor", "lower generate.num_cpus"),
    ),
    # --- storage
    Case(
        "storage-path-ftp",
        [*EVAL, "run.storage_path=ftp://example.com/runs"],
        ("run.storage_path", "unsupported scheme 'ftp://'", "s3:// or gs://"),
    ),
    Case(
        "storage-path-hdfs",
        [*TRAIN_OK, "run.storage_path=hdfs://namenode/runs"],
        ("run.storage_path", "unsupported scheme 'hdfs://'"),
        {"good.parquet": pa.Table.from_pylist(GOOD_ROWS)},
    ),
    Case(
        "checkpoint-storage-ftp",
        [*TRAIN_OK, "train.checkpoint_storage=ftp://example.com/ckpt"],
        ("train.checkpoint_storage", "unsupported scheme 'ftp://'"),
        {"good.parquet": pa.Table.from_pylist(GOOD_ROWS)},
    ),
    # --- sweeps
    Case(
        "sweep-zero-trials",
        [*SWEEP_DRY, "sweep.cocktails=[]"],
        ("sweep.cocktails", "at least 1 item"),
    ),
    Case(
        "sweep-negative-price",
        [*SWEEP_DRY, "cost.prices={CPU: 0.04, H100: -3.5}"],
        ("cost.prices", "price of H100: -3.5 must be a number >= 0 (USD per hour)"),
    ),
    Case(
        "sweep-zero-seeds",
        [*SWEEP, "sweep.seeds=[]"],
        ("sweep.seeds", "at least 1 item"),
    ),
    # --- contamination: a test input in the training rows (punctuation and case differ,
    # so the loader's own same-text check lets it through)
    Case(
        "contamination-gold-in-test",
        [*SWEEP, "sweep.tasks=[{in}/leaky.yaml]"],
        (
            "contamination: 1 of 4 test rows of task leaky appear in the training rows",
            "(gold rows of leaky)",
            "set contamination.allow: true",
        ),
        {
            "leaky.yaml": _task_yaml(
                "leaky", source={"format": "csv", "splits": {"train": "tr.csv", "test": "te.csv"}}
            ),
            "tr.csv": "headline,tone\n"
            + "".join(f"Plant {i} output rose {i}%,positive\n" for i in range(8))
            + "Profit at Acme falls sharply -- shares slide!,negative\n",
            "te.csv": "headline,tone\nprofit at acme falls sharply shares slide,negative\n"
            + "".join(f"Dividend {i} was cut,negative\n" for i in range(3)),
        },
    ),
    Case(
        "contamination-synthetic-pool-in-test",
        [
            "pipeline",
            "model.source=tiny-random",
            "run.storage_path={runs}",
            "pipeline.tasks=[{in}/news.yaml]",
            "pipeline.synth_tasks=[{task: {in}/stance.yaml, pool: {in}/pool.csv}]",
            "pipeline.stages.sft=false",
            "pipeline.stages.dpo=false",
        ],
        ("contamination: 1 of 4 test rows of task stance", "(synthetic rows of stance)"),
        {
            "news.yaml": _task_yaml(
                "news", source={"splits": {"train": "tr.csv", "test": "nte.csv"}}
            ),
            "tr.csv": "headline,tone\n"
            + "".join(f"Plant {i} output rose {i}%,positive\n" for i in range(8)),
            "nte.csv": "headline,tone\n" + "".join(f"Mine {i} closed,negative\n" for i in range(4)),
            "stance.yaml": _task_yaml("stance", source={"splits": {"test": "te.csv"}}),
            "te.csv": "headline,tone\nRates stay on hold as the committee said.,neutral\n"
            + "".join(f"Dividend {i} was cut,negative\n" for i in range(3)),
            "pool.csv": "headline\n"
            + "".join(f"Bank {i} hired staff\n" for i in range(8))
            + "RATES STAY ON HOLD -- AS THE COMMITTEE SAID!\n",
        },
    ),
    Case(
        "sweep-resume-missing-dir",
        [SWEEP[0], "--resume", *SWEEP[1:]],
        ("--resume: no sweep found under", "run it without --resume first"),
    ),
    Case(
        "sweep-resume-unknown-run-id",
        [SWEEP[0], "--resume", *SWEEP[1:], "run.run_id=20990101-000000"],
        ("--resume:", "holds no sweep to resume", "check run.run_id"),
    ),
]


def _write_inputs(folder: Path, files: dict[str, Any]) -> None:
    folder.mkdir()
    for name, content in files.items():
        path = folder / name
        if isinstance(content, pa.Table):
            pq.write_table(content, path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


@pytest.fixture(autouse=True)
def private_registry(monkeypatch):
    """Task YAMLs registered here (some with broken files) leave the registry with the
    test: `task_names()` lists them, and the tiny model's tokenizer corpus reads every
    listed task."""
    import raysys.tasks

    monkeypatch.setattr(raysys.tasks, "_REGISTRY", dict(raysys.tasks._REGISTRY))


@pytest.fixture
def no_ray(monkeypatch):
    """Starting Ray on bad input is itself the failure: fail loudly instead."""
    import ray

    import raysys.runtime

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("bad input reached Ray: it must be refused before Ray starts")

    monkeypatch.setattr(raysys.runtime, "init_ray", refuse)
    monkeypatch.setattr(ray, "init", refuse)


def test_at_least_25_cases_cover_the_issue():
    assert len(CASES) >= 25, len(CASES)
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_bad_input_exits_2_names_the_fix_and_writes_nothing(
    case: Case, tmp_path, monkeypatch, capsys, no_ray
):
    inputs, work = tmp_path / "in", tmp_path / "work"
    _write_inputs(inputs, case.files)
    work.mkdir()
    monkeypatch.chdir(work)  # relative writes (./runs, ./ftp:) would land here
    runs = work / "runs"
    argv = [a.replace("{in}", str(inputs)).replace("{runs}", str(runs)) for a in case.argv]

    rc = main(argv)

    err = capsys.readouterr().err
    lines = error_lines(err)
    assert lines and lines[-1].startswith("raysys: error: "), err
    assert len(lines) == 1, f"not one line:\n{err}"
    for part in case.expect:
        assert part in lines[0], f"{part!r} not in {lines[0]!r}"
    assert rc == 2
    assert _written(work) == [], "written on bad input"
    assert sorted(os.listdir(inputs)) == sorted(case.files)


def _written(root: Path) -> list[str]:
    """Files, and folders other than empty ones, under `root` (an empty storage root
    made by a writability probe is not output)."""
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or any(p.iterdir())
    )


def test_file_uri_storage_path_is_the_local_path(tmp_path):
    """`file://` is accepted and means the local path; Ray-style URIs pass through."""
    from raysys.config import TrainConfig, load_config

    base = ["data.path=x.parquet"]
    cfg = load_config(TrainConfig, None, [*base, f"run.storage_path=file://{tmp_path}/r"])
    assert cfg.run.storage_path == f"{tmp_path}/r"
    for uri in ("s3://bucket/runs", "gs://bucket/runs", "relative/runs", "~/runs"):
        cfg = load_config(TrainConfig, None, [*base, f"run.storage_path={uri}"])
        assert cfg.run.storage_path == uri


def test_yaml_anchors_and_aliases_are_refused():
    """Aliases are how a 464-byte "billion laughs" file expands to gigabytes; configs write
    values out instead (merge keys need an alias, so they go too)."""
    from raysys.config import YamlShapeError, load_yaml_text

    for text in ("base: &b {a: 1, b: 2}\nuse:\n  <<: *b\n  b: 3\n", "a: &x 1\n", "a: *x\n"):
        with pytest.raises(YamlShapeError, match="not accepted; write the value out"):
            load_yaml_text(text)
    with pytest.raises(YamlShapeError, match="nested more than 64 levels"):
        load_yaml_text("a: " + "[" * 20000 + "]" * 20000)


@pytest.mark.parametrize(
    "pattern, bad",
    [
        (r"Answer:\s*(\w+)", False),
        (r"Final answer:\s*([\d,]+(?:\.\d+)?)", False),
        (r"answer:(\d{1,3}(?:,\d{3})+)", False),  # a fixed count inside: one way to split
        (r"answer:((?:\d{1,3},)+\d{3})", True),  # a varying count inside a repeat
        (r"Answer:((?:.*a){12}b)", True),  # a bounded outer repeat backtracks all the same
        (r"(a+)+$", True),
        (r"((?:\s*\w+)+)$", True),
        (r"(.*)*x", True),
        (r"((?:a|b+)*)c", True),
        (r"(?:x(\w+)\s?)*y", True),
    ],
)
def test_nested_repeat_detector(pattern, bad):
    from raysys.tasks.loaders import has_nested_repeat

    assert has_nested_repeat(pattern) is bad


def test_builtin_answer_regexes_have_no_nested_repeat():
    from raysys.tasks import get_task, task_names
    from raysys.tasks.loaders import has_nested_repeat

    for name in task_names():
        assert not has_nested_repeat(get_task(name).answer_re.pattern), name


@pytest.mark.parametrize(
    "args",
    [
        ["train", "configs/train_sft.yaml", "data.train_size=8"],
        ["sweep", "configs/sweep_tiny.yaml"],
        ["pipeline", "configs/pipeline_tiny.yaml"],
        ["synth", "configs/synth.yaml"],
    ],
    ids=lambda a: a[0],
)
def test_an_unreachable_object_store_run_directory_is_refused_before_any_work(
    args, tmp_path, monkeypatch, capsys
):
    """`run.storage_path=s3://...` is probed (write, read, delete) before anything is
    built: an endpoint that does not answer is one line, exit 2, nothing written (and
    never a local folder `s3:/...`, which `Path("s3://b/x")` would be)."""
    import socket

    from raysys.cli import main

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there
    repo = REPO
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("raysys.storage.PROBE_SECONDS", 5.0)
    cache = tmp_path / "cache"
    monkeypatch.setenv("RAYSYS_CACHE", str(cache))
    uri = f"s3://bucket/runs?endpoint_override=127.0.0.1:{port}&scheme=http"
    argv = [args[0], str(repo / args[1]), *args[2:], f"run.storage_path={uri}"]
    assert main(argv) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("raysys: error: run.storage_path: s3://"), err
    assert list(tmp_path.iterdir()) == []  # no run dir, no mirror, no `s3:` folder
