"""Generated finance tasks (and two general regularisers), one module per task.

Every module exposes NAME, KIND, LABELS, SPLITS, PROMPT and
`generate_splits(sizes, seed)`; see `_common.make_splits` for the guarantees
(seeded per split, balanced slots, no text shared between splits, eval splits
independent of the train size).
"""

from __future__ import annotations

from types import ModuleType

from raysys.tasks.gen import (
    arith_math,
    causal_detection,
    fin_ner,
    fomc_stance,
    general_instruct,
    news_sentiment,
    numeric_qa,
    price_direction,
)

GENERATORS: dict[str, ModuleType] = {
    m.NAME: m
    for m in (
        news_sentiment,
        price_direction,
        fomc_stance,
        fin_ner,
        numeric_qa,
        causal_detection,
        general_instruct,
        arith_math,
    )
}
