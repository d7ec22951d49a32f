"""`ray job submit` entrypoint: one LoRA SFT or DPO run on the cluster's Ray Train.

    ray job submit --working-dir . --runtime-env-json '{"pip": ["-e ."]}' -- \
        python jobs/train.py configs/train_sft.yaml train.num_workers=4 train.use_gpu=true

Attaches to the cluster through $RAY_ADDRESS (set by `ray job submit`); the
arguments are those of `raysys train`. Exit code 2 for bad input, 1 for a
failed or interrupted run (re-submit with the same run.run_id to resume).
"""

from __future__ import annotations

import sys

from raysys.cli import main

if __name__ == "__main__":  # engines may spawn processes that re-import this file
    sys.exit(main(["train", *sys.argv[1:]]))
