"""`python -m raysys.cli`: the console script."""

import sys

from raysys.cli import main

if __name__ == "__main__":  # engines and trainers may spawn processes that re-import this
    sys.exit(main())
