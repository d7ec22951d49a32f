"""The contamination check in a real run: a pipeline whose gold training file holds a
test input (punctuation and case changed) runs when `contamination.allow: true`, and
its report shows the overlap table; a resumed run reuses the stored check. (Refusal
with exit code 2 and nothing written: tests/e2e/test_bad_input.py, contamination-*.)"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.fixtures import REPO

LEAK = "Profit at Acme falls sharply -- shares slide!"


def _files(tmp_path: Path) -> Path:
    (tmp_path / "tr.csv").write_text(
        "headline,tone\n"
        + "".join(f"Plant {i} output rose {i}%,positive\n" for i in range(11))
        + f"{LEAK},negative\n"
    )
    (tmp_path / "te.csv").write_text(
        "headline,tone\nprofit at acme falls sharply shares slide,negative\n"
        + "".join(f"Dividend {i} was cut,negative\n" for i in range(5))
    )
    task = {
        "name": "leaky",
        "kind": "classification",
        "labels": ["positive", "negative", "neutral"],
        "prompt": "Tone?\n{input}\nEnd with 'Answer: <tone>'.",
        "source": {"splits": {"train": "tr.csv", "test": "te.csv"}},
        "columns": {"input": "headline", "gold": "tone"},
    }
    path = tmp_path / "leaky.yaml"
    path.write_text(yaml.safe_dump(task))
    return path


def test_an_allowed_overlap_runs_and_the_report_shows_the_table(ray_local, tmp_path):
    from raysys.config import PipelineConfig
    from raysys.pipeline.driver import run_pipeline
    from raysys.tasks.checks import load

    task = _files(tmp_path)
    overrides = [
        "model.source=tiny-random",
        "ray.num_cpus=2",
        f"run.storage_path={tmp_path / 'runs'}",
        "run.run_id=r1",
        f"pipeline.tasks=[{task}]",
        "pipeline.synth_tasks=[]",
        "pipeline.eval_tasks=null",
        "pipeline.stages={eval_base: false, sft: false, dpo: false, synth: false}",
        "contamination.allow=true",
    ]
    cfg = load(PipelineConfig, str(REPO / "configs" / "pipeline_tiny.yaml"), overrides)
    out = run_pipeline(cfg)
    stored = json.loads((out.run_dir / "contamination.json").read_text())
    (split,) = stored["splits"]
    assert (split["eval_task"], split["split"], split["eval_rows"]) == ("leaky", "test", 6)
    assert (split["exact"], split["affected"], split["source"]) == (1, 1, "gold")
    md = (out.run_dir / "report.md").read_text(encoding="utf-8")
    assert "## Overlap with evaluation splits" in md
    assert "| leaky | test | 6 | 12 | 1 |" in md
    assert "contamination.allow: true" in md
    # resumed with the same rows: the stored check is reused, not computed again
    marked = {**stored, "splits": [{**split, "example_input": "stored"}]}
    (out.run_dir / "contamination.json").write_text(json.dumps(marked))
    run_pipeline(cfg, resume=True)
    again = json.loads((out.run_dir / "contamination.json").read_text())
    assert again["splits"][0]["example_input"] == "stored"
