r"""`ray job submit` entrypoint: the base model and any number of adapters on any tasks,
in one Ray Data pass.

    ray job submit --address http://127.0.0.1:8265 --working-dir . \
        --runtime-env cluster/runtime_env.yaml -- \
        python jobs/eval.py --config configs/eval.yaml 'eval.adapters={a: s3://BUCKET/a}'

Arguments are those of `raysys eval`; the config may also be given positionally.
Prints the (adapter, task) table and the output directory. Exit code 2 for bad input
(including an adapter that does not change the model's outputs), 1 for a failed run.
"""

from __future__ import annotations

import sys

from _common import run

if __name__ == "__main__":  # vLLM spawns its engine process, which re-imports this file
    sys.exit(run("eval", __doc__))
