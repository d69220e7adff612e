#!/usr/bin/env bash
# Verilator -Wall lint of the SPS core top (default zcu104 parameters, and the small CI configuration).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ -z "${VERILATOR_ROOT:-}" ] && [ -d /tmp/venv/lib/python3.11/site-packages/verilator ]; then
  export VERILATOR_ROOT=/tmp/venv/lib/python3.11/site-packages/verilator
  export PATH="$VERILATOR_ROOT/bin:$PATH"
fi
cd "$here/rtl"
files=$(sed -e 's/#.*//' -e '/^\s*$/d' files.f)
verilator --lint-only -Wall --top-module sps_top "$here/lint.vlt" $files
verilator --lint-only -Wall --top-module sps_top "$here/lint.vlt" -GRows=2 -GCols=4 -GAxiDataWidth=64 \
  -GActBufBytes=16384 -GWeightBufBytes=8192 $files
echo "lint clean"
