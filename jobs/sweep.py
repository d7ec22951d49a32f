r"""`ray job submit` entrypoint: a Ray Tune sweep of LoRA SFT trials and its report.

    ray job submit --address http://127.0.0.1:8265 --working-dir . \
        --runtime-env cluster/runtime_env.yaml -- \
        python jobs/sweep.py --config configs/sweep.yaml run.storage_path=s3://BUCKET/raysys

Arguments are those of `raysys sweep`; the config may also be given positionally.
`--dry-run` prints the trials and resources only; `--resume` continues the sweep of
run.run_id (finished trials are not run again); `--retry-errored` (with `--resume`) runs
errored trials again. Prints the results' headline and the report's path.
Exit code 2 for bad input, 1 for errored trials or an interrupted sweep.
"""

from __future__ import annotations

import sys

from _common import run

if __name__ == "__main__":  # trials and engines may spawn processes that re-import this file
    sys.exit(run("sweep", __doc__))
