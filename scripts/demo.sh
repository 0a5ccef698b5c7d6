#!/usr/bin/env bash
# Install the library (no test extras) and run the main job: python -m synaptic_fwp.demo.
# It writes NetCDF files and figures into ./out (or the directory given with --out).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="" bash scripts/setup.sh
.venv/bin/python -m synaptic_fwp.demo "$@"
