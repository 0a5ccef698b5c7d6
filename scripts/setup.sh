#!/usr/bin/env bash
# Create .venv (if missing) and install synaptic_fwp with its test/extra dependencies.
# torch: where no torch is importable yet, install TORCH_SPEC (default torch==2.13.0: on the
# project's CPU machines pip takes it from a local CPU wheel; on a GPU machine PyPI's normal
# CUDA build). pyproject.toml asks only for a range, so an existing torch is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip -q --disable-pip-version-check)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    "${PIP[@]}" install "${TORCH_SPEC:-torch==2.13.0}"
fi
EXTRAS=${EXTRAS-test}
TARGET="."; [ -n "$EXTRAS" ] && TARGET=".[$EXTRAS]"
"${PIP[@]}" install -e "$TARGET"
.venv/bin/python -c "import synaptic_fwp, torch; print('synaptic_fwp', synaptic_fwp.__version__, '| torch', torch.__version__)"
