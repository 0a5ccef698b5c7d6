#!/usr/bin/env bash
# Install (scripts/setup.sh) and run the whole test suite, including the Triton kernels under
# the interpreter and the executed notebooks. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest -q "$@"
