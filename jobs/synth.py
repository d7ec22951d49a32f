r"""`ray job submit` entrypoint: label unlabeled inputs by chain-of-thought sampling and
majority vote; writes SFT rows and DPO pairs.

    ray job submit --address http://127.0.0.1:8265 --working-dir . \
        --runtime-env cluster/runtime_env.yaml -- \
        python jobs/synth.py --config configs/synth.yaml synth.adapter=s3://BUCKET/adapter

Arguments are those of `raysys synth`; the config may also be given positionally.
Prints the yield and the output directory. Exit code 2 for bad input, 1 for a failed
run (re-submit with the same run.run_id: labeled inputs are skipped).
"""

from __future__ import annotations

import sys

from _common import run

if __name__ == "__main__":  # vLLM spawns its engine process, which re-imports this file
    sys.exit(run("synth", __doc__))
