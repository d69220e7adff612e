"""The core's identity in a block design, and the marks of the virtual overlay, defined once.

The Vivado scripts (through the generated hw_src/vivado/sps_names.tcl), the board backend that finds the core in
an overlay's .hwh, and the virtual board that imitates an overlay all take these names from here.
Torch- and onnx-free: this module runs on the board.
"""
from __future__ import annotations

from pathlib import Path

# The packaged IP's VLNV (vendor:library:name:version).
IP_VENDOR = "sps_pynq"                 # letters and underscores only (UG1118 naming; no hyphen)
IP_LIBRARY = "sps"
IP_NAME = "sps_core"
IP_VERSION = "1.0"
CORE_VLNV = f"{IP_VENDOR}:{IP_LIBRARY}:{IP_NAME}:{IP_VERSION}"

CORE_INSTANCE = "sps_core_0"      # the core's cell in the block design; pynq's ip_dict key
PS_INSTANCE = "zynq_ultra_ps_e_0"
CORE_BASE = 0xA000_0000           # AXI4-Lite register window of the core on M_AXI_HPM0_FPD
CORE_RANGE = 0x1_0000             # 64 KiB (the core decodes fewer bits and aliases inside it)
REG_BLOCK = "Reg"                 # the register address block's name in the IP and the .hwh

# The virtual overlay (sps_pynq.virtual_board) is marked so that it is never taken for a real one: its .hwh design
# name starts with VIRTUAL_DESIGN_PREFIX, and the virtual board's /proc/version contains VIRTUAL_BOARD_MARK.
VIRTUAL_DESIGN_PREFIX = "sps_virtual_"
VIRTUAL_BOARD_MARK = b"virtual sps-pynq board"


def is_virtual_overlay(hwh_path) -> bool:
    """True when the .hwh beside a bitstream is the virtual overlay's (not produced by Vivado)."""
    try:
        head = Path(hwh_path).read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return False
    return f'NAME="{VIRTUAL_DESIGN_PREFIX}' in head
