r"""`ray job submit` entrypoint: (re)write a finished sweep's report (transfer matrix,
leaderboard, scaling law) from its results.parquet.

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python jobs/report.py s3://BUCKET/raysys/sweep/<run_id>

Takes the sweep directory (<run.storage_path>/<run.name>/<run_id>) as its one argument.
Prints the headline and the report's path. Exit code 2 when it holds no results.parquet.
"""

from __future__ import annotations

import sys

from _common import run

if __name__ == "__main__":
    sys.exit(run("report", __doc__))
