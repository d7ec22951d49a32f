"""The DPO stages: the gate (the SFT model answers training inputs; DPO runs when too
many outputs run overlong or miss the answer format), pairs mined from those same
generations, LoRA DPO on top of the SFT model, and its evaluation."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from raysys.config import PipelineConfig
from raysys.pipeline.evaluation import evaluate
from raysys.pipeline.stages import Row, Study, dumped, holdout, sizes
from raysys.pipeline.training import all_tasks_spec, train

log = logging.getLogger(__name__)


def dpo(study: Study) -> None:
    cfg, p = study.cfg, study.cfg.pipeline
    if study.current[1] is None:
        return
    gate = study.st.run(
        "dpo_probe",
        "DPO gate: the SFT model on training inputs",
        {"gate": dumped(p.dpo_gate), "generate": dumped(cfg.generate), "sizes": sizes(p)},
        ("sft", "data"),
        lambda d: probe(study, d),
    )
    study.dpo_decision = gate["decision"]
    if not gate["decision"]["run"]:
        log.info("DPO not needed: %s", gate["decision"]["why"])
        return
    sft_adapter = study.current[1]
    res = study.st.run(
        "dpo",
        f"LoRA DPO on {gate['pairs']} pairs (reference: the SFT model)",
        {"dpo": dumped(p.dpo), "model": dumped(cfg.model)},
        ("dpo_probe",),
        lambda d: train(
            study,
            str(study.st.dir("dpo_probe") / "pairs.parquet"),
            p.dpo.model_copy(update={"init_adapter": sft_adapter}),
            d,
        ),
    )
    study.current = ("dpo", str(study.st.dir("dpo") / "adapter"))
    evaluate(study, "eval_dpo", "dpo", study.current[1], ("dpo",), train=res)


def probe(study: Study, d: Path) -> dict[str, Any]:
    """Greedy outputs of the SFT model on trained-on inputs, scored as any evaluation
    (predictions.parquet, results.csv): overlength and wrong-format rates decide whether
    DPO runs; the same generations become its pairs."""
    from raysys.evaluate.scoring import evaluate_tasks

    cfg, gate = study.cfg, study.cfg.pipeline.dpo_gate
    tasks = probe_rows(cfg, study.gold_path, gate.probe_size)
    gen = cfg.generate
    if gate.max_new_tokens:
        gen = gen.model_copy(update={"max_new_tokens": gate.max_new_tokens})
    adapters = {"sft": study.current[1]}
    table = evaluate_tasks(tasks, study.model_path, adapters, gen, cfg.model.dtype, d, False)
    return gate_and_pairs(tasks, table, d, gate)


def gate_and_pairs(
    tasks: dict[str, tuple[Any, list[Row]]], table: Any, d: Path, gate: Any
) -> dict[str, Any]:
    """The gate's reading of one evaluation of the SFT model (`evaluate_tasks`' table and
    the predictions.parquet it left in `d`): the overlength and wrong-format rates, the
    decision, and the pairs mined from the same generations (written to pairs.parquet)."""
    import pandas as pd

    from raysys.io import write_parquet
    from raysys.synth.pairs import mine_pairs
    from raysys.tasks.base import MISSING

    out = pd.read_parquet(d / "predictions.parquet")
    over, miss = float(out["overlength"].mean()), float((out["pred"] == MISSING).mean())
    gens = out[["id", "generated_text", "overlong"]].to_dict("records")
    pairs, stats = [], {}
    for name, (task, rows) in tasks.items():
        task_pairs, stats[name] = mine_pairs(task, rows, gens)
        pairs += task_pairs
    write_parquet(d / "pairs.parquet", pairs)
    return {
        "overlength_ratio": over,
        "missing_rate": miss,
        "per_task": table.drop(columns=["adapter"]).to_dict("records"),
        "pairs": len(pairs),
        "pair_stats": stats,
        "decision": dpo_decision(over, miss, len(out), len(pairs), gate),
    }


def dpo_decision(over: float, miss: float, n: int, pairs: int, gate: Any) -> dict[str, Any]:
    """Run DPO when the overlength ratio or the wrong-format rate is above its threshold
    (or `force`), and pairs exist to train on."""
    triggered = over > gate.overlength_threshold or miss > gate.missing_threshold
    why = (
        f"overlength {over:.2f} (threshold {gate.overlength_threshold:.2f}), wrong format "
        f"{miss:.2f} (threshold {gate.missing_threshold:.2f}) on {n} training inputs"
    )
    if gate.force and not triggered:
        why += "; forced by pipeline.dpo_gate.force"
    run = (triggered or gate.force) and pairs > 0
    if (triggered or gate.force) and not pairs:
        why += "; but no pair could be mined (no rejected candidate)"
    return {"run": run, "triggered": triggered, "forced": gate.force, "why": why}


def probe_rows(
    cfg: PipelineConfig, gold_path: str | None, per_task: int
) -> dict[str, tuple[Any, list[Row]]]:
    """Up to `per_task` inputs of each task that SFT trained on (their prompts render as
    in training: `task.messages`), with gold, keyed for `evaluate_tasks`."""
    import pandas as pd

    from raysys.data.cocktail import parse_spec
    from raysys.data.mixing import build_pools, resolve_spec
    from raysys.tasks import get_task

    p = cfg.pipeline
    trained = (
        set(pd.read_parquet(gold_path, columns=["id"])["id"].astype(str)) if gold_path else set()
    )
    spec = resolve_spec(parse_spec(all_tasks_spec(p.tasks)))
    pools = build_pools(spec, p.train_size, cfg.run.seed, holdout(p))
    return {
        name: (get_task(name), [r for r in pool if str(r["id"]) in trained][:per_task])
        for name, pool in pools.items()
    }
