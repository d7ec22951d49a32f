"""vLLM-with-LoRA vs PEFT (the `hf` engine): the same greedy outputs on probe prompts,
per adapter, and each adapter changing something. The evaluation's vLLM canary."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pandas as pd

from raysys.engines import hf, vllm
from raysys.engines.base import BASE, resolve_sampling

PROBES = [
    "Revenue rose 4% in the third quarter. Is the news positive, negative or neutral?",
    "The central bank held rates and signalled patience. Hawkish, dovish or neutral?",
    "Shares of Acme fell 12% after the company cut its full-year guidance. Why?",
    "Net income was $3.2 million on sales of $41 million. What is the net margin?",
]


@dataclass
class ParityReport:
    """vLLM vs the `hf` engine (PEFT) under greedy decoding, per adapter ("" = base)."""

    agreement: dict[str, float]  # share of probes with identical text
    prefix_agreement: dict[str, float]  # mean share of the longer text that both share
    changed_vs_base: dict[str, float]  # share of probes where vLLM's adapter text != base's
    vllm: pd.DataFrame
    hf: pd.DataFrame

    def failures(self, min_agreement: float = 1.0) -> list[str]:
        """One line per adapter that disagrees with PEFT or changes nothing."""
        out = [
            f"adapter {n or 'base'!r}: vLLM agrees with PEFT on {a:.0%} of probes "
            f"(< {min_agreement:.0%})"
            for n, a in self.agreement.items()
            if a < min_agreement
        ]
        out += [
            f"adapter {n!r}: vLLM outputs equal the base model's on every probe (not applied?)"
            for n, c in self.changed_vs_base.items()
            if c == 0.0
        ]
        return out


def agreement(vllm_df: pd.DataFrame, hf_df: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per-adapter {agreement, prefix_agreement, changed_vs_base} of two engines' outputs
    for the same (id, adapter) rows."""
    key = ["id", "adapter"]
    m = vllm_df[[*key, "generated_text"]].merge(
        hf_df[[*key, "generated_text"]], on=key, suffixes=("_v", "_h"), validate="one_to_one"
    )
    if len(m) != len(vllm_df) or len(m) != len(hf_df):
        raise ValueError("agreement needs both engines' outputs for the same (id, adapter) rows")
    m["same"] = m["generated_text_v"] == m["generated_text_h"]
    pairs = zip(m["generated_text_v"], m["generated_text_h"], strict=True)
    m["prefix"] = [_prefix_share(a, b) for a, b in pairs]
    base = m[m["adapter"] == BASE].set_index("id")["generated_text_v"]
    out: dict[str, dict[str, float]] = {}
    for name, g in m.groupby("adapter", sort=False):
        row = {"agreement": float(g["same"].mean()), "prefix_agreement": float(g["prefix"].mean())}
        if name != BASE and len(base):
            row["changed_vs_base"] = float((g.set_index("id")["generated_text_v"] != base).mean())
        out[str(name)] = row
    return out


def _prefix_share(a: str, b: str) -> float:
    n = len(os.path.commonprefix([a, b]))
    return n / max(len(a), len(b), 1)


def compare_with_hf(
    model_path: str,
    adapters: dict[str, str],
    gen_cfg: Any,
    dtype: str = "float32",
    probes: list[list[dict[str, str]]] | None = None,
) -> ParityReport:
    """Greedy outputs of vLLM-with-LoRA vs PEFT (the `hf` engine) on probe prompts.

    float32 on both sides: in bfloat16 the two engines' kernels round differently and
    greedy paths part after a few tokens, which hides real bugs in the noise.
    """
    probes = probes or [[{"role": "user", "content": p}] for p in PROBES]
    rows = [
        {"id": f"probe-{i}", "messages": m, "adapter": name}
        for name in [BASE, *adapters]
        for i, m in enumerate(probes)
    ]
    greedy = resolve_sampling(gen_cfg, None)  # one decoding for both sides
    v = vllm.generate(rows, model_path, adapters, gen_cfg, dtype, sampling=greedy)
    h = hf.generate(rows, model_path, adapters, gen_cfg, dtype, sampling=greedy)
    per = agreement(v, h)
    return ParityReport(
        agreement={n: r["agreement"] for n, r in per.items()},
        prefix_agreement={n: r["prefix_agreement"] for n, r in per.items()},
        changed_vs_base={n: r["changed_vs_base"] for n, r in per.items() if n != BASE},
        vllm=v,
        hf=h,
    )
