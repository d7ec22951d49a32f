#!/usr/bin/env bash
# The wheels bench/gpu_lora.py needs on a GPU machine without network (BENCHMARKS.md
# "LoRA SFT and generation on one GPU"): that machine's python3 (3.12) has torch,
# accelerate, pandas, pyarrow, fsspec, huggingface-hub, xxhash and tokenizers, but no
# TRL, no datasets (nor its dill and multiprocess), and transformers/peft at other
# versions than raysys pins. Run here, where pip reaches PyPI; the versions are the ones
# this checkout's venv runs (pyproject.toml's pins). Writes bench/wheels/ (git-ignored,
# carried to the machine) and prints the command to run there.
#
#   bash bench/gpu_wheels.sh            # PY=.venv/bin/python by default
#   EXTRA="pyarrow==26.0.1" bash bench/gpu_wheels.sh   # more pins, e.g. if the machine's
#                                       # pyarrow is older than datasets' >= 24 (+42 MiB)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DEST=bench/wheels
PKGS=(trl datasets dill multiprocess transformers peft)

pins=()
for p in "${PKGS[@]}"; do
  v=$("$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$p")
  pins+=("$p==$v")
done
# shellcheck disable=SC2206
pins+=(${EXTRA:-})

rm -rf "$DEST"
mkdir -p "$DEST"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any -d "$DEST" "${pins[@]}"

echo "downloaded into $DEST: ${pins[*]}"
ls -l "$DEST"
du -sh "$DEST"
cat <<'EOF'

On the GPU machine (device `run`, carry: ["bench/wheels"], timeout_s 600):

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site bench/wheels/*.whl && export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 && nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv && python3 bench/gpu_lora.py --out $OUT/gpu_lora.json
EOF
