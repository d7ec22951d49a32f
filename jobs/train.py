r"""`ray job submit` entrypoint: one LoRA SFT or DPO run on the cluster's Ray Train.

    ray job submit --address http://127.0.0.1:8265 --working-dir . \
        --runtime-env cluster/runtime_env.yaml -- \
        python jobs/train.py --config configs/train_sft.yaml train.num_workers=4 train.use_gpu=true

Arguments are those of `raysys train`; the config may also be given positionally.
Prints the adapter's and the run's directories. Exit code 2 for bad input, 1 for a
failed or interrupted run (re-submit with the same run.run_id to resume).
"""

from __future__ import annotations

import sys

from _common import run

if __name__ == "__main__":  # engines may spawn processes that re-import this file
    sys.exit(run("train", __doc__))
