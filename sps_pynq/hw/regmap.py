"""AXI4-Lite register map of the SPS core, defined once.

Every register is 32 bits (PYNQ's remote protocol reads 32-bit words only); 64-bit values are _LO/_HI pairs.
A whole network runs from one start: the driver writes ARENA_LO/HI, PROG_OFFSET, NUM_LAYERS once per model and
CTRL.START once per run, then polls CTRL.DONE (or waits for the interrupt). The generated SystemVerilog package,
C header and `docs/registers.md` come from `REGISTERS` (see `sps_pynq.hw.codegen`).

Torch- and onnx-free: this module runs on the board.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True)
class Register:
    name: str
    offset: int
    access: str       # "rw", "ro", "w1s" (write 1 to set, reads back live state), "rc" (read clears), "w1c"
    doc: str


REGISTERS = [
    Register("CTRL", 0x00, "rw", "bit0 START (write 1: run the program; reads 1 while running), "
             "bit1 DONE (set at the end of a run, cleared by START), bit2 IDLE, bit3 ERROR (see ERROR_CODE), "
             "bit4 SOFT_RESET (write 1: abort the run, clear state; self-clearing)"),
    Register("GIE", 0x04, "rw", "bit0: global interrupt enable"),
    Register("IER", 0x08, "rw", "bit0: interrupt on DONE, bit1: interrupt on ERROR"),
    Register("ISR", 0x0C, "w1c", "bit0: DONE happened, bit1: ERROR happened (write 1 to clear)"),
    Register("HW_ID", 0x10, "ro", "magic 0x31535053 (\"SPS1\")"),
    Register("HW_CONFIG", 0x14, "ro", "rows[7:0] cols[15:8] format_version[23:16] log2(axi bytes)[27:24] "
             "max_patterns-1[31:28]"),
    Register("HW_BUFFERS", 0x18, "ro", "activation buffer KiB[15:0], weight buffer KiB[31:16]"),
    Register("ERROR_CODE", 0x1C, "ro", "0 none; see ErrorCode"),
    Register("ARENA_LO", 0x20, "rw", "arena base address in DDR, bits 31:0 (64-byte aligned)"),
    Register("ARENA_HI", 0x24, "rw", "arena base address, bits 63:32"),
    Register("PROG_OFFSET", 0x28, "rw", "byte offset of the first descriptor in the arena"),
    Register("NUM_LAYERS", 0x2C, "rw", "number of descriptors to run"),
    Register("CUR_LAYER", 0x30, "ro", "index of the layer running (or that failed)"),
    Register("STATS_OFFSET", 0x34, "rw", "byte offset in the arena of per-layer statistics, 16 bytes per layer: "
             "cycles, MAC-active cycles, memory-stall cycles, 0; written at the end of each layer when "
             "STATS_ENABLE is 1"),
    Register("STATS_ENABLE", 0x38, "rw", "bit0: write per-layer statistics to STATS_OFFSET"),
    Register("CYCLES_LO", 0x40, "ro", "cycles from START to DONE of the last run, bits 31:0"),
    Register("CYCLES_HI", 0x44, "ro", "bits 63:32"),
    Register("MAC_CYCLES_LO", 0x48, "ro", "cycles in which the array did multiply-accumulates, bits 31:0"),
    Register("MAC_CYCLES_HI", 0x4C, "ro", "bits 63:32"),
    Register("STALL_CYCLES_LO", 0x50, "ro", "cycles waiting on the AXI master, bits 31:0"),
    Register("STALL_CYCLES_HI", 0x54, "ro", "bits 63:32"),
    Register("BYTES_RD_LO", 0x58, "ro", "bytes read from DDR by the last run, bits 31:0"),
    Register("BYTES_RD_HI", 0x5C, "ro", "bits 63:32"),
    Register("BYTES_WR_LO", 0x60, "ro", "bytes written to DDR by the last run, bits 31:0"),
    Register("BYTES_WR_HI", 0x64, "ro", "bits 63:32"),
]

REG = {r.name: r.offset for r in REGISTERS}
ADDR_BITS = 8        # the AXI4-Lite slave decodes 256 bytes


class CtrlBit(enum.IntFlag):
    START = 1 << 0
    DONE = 1 << 1
    IDLE = 1 << 2
    ERROR = 1 << 3
    SOFT_RESET = 1 << 4


class ErrorCode(enum.IntEnum):
    NONE = 0
    BAD_OP = 1            # descriptor op not in Op
    ACT_BUF_OVERFLOW = 2  # input feature map larger than the activation buffer
    WEIGHT_BUF_OVERFLOW = 3   # row group larger than the weight buffer
    BAD_SHAPE = 4         # zero or inconsistent dimensions, K or P out of range
    AXI_ERROR = 5         # SLVERR/DECERR on the AXI master
    MISALIGNED = 6        # arena base or an offset not aligned as required

    @property
    def text(self) -> str:
        return {
            0: "no error",
            1: "descriptor has an unknown op",
            2: "input feature map does not fit the activation buffer",
            3: "weight row group does not fit the weight buffer",
            4: "descriptor has zero or inconsistent dimensions (or P/K out of range)",
            5: "AXI read or write returned an error response",
            6: "arena base or a buffer offset is misaligned",
        }[int(self)]
