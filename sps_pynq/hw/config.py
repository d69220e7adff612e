"""Hardware build parameters of the SPS core, defined once.

The compiler packs for one `HwConfig`, the runtime refuses a `.spsmodel` packed for another, the RTL is
elaborated with the same numbers (through the generated SystemVerilog package) and the golden model reads them
from the generated C header. Torch- and onnx-free: this module runs on the board.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

# Bumped whenever the descriptor layout, the arena layout or the arithmetic changes.
# 2: in_map_h / out_map_h (layers in bands of rows), unaligned feature-map offsets for CONV and pools.
# 3: shared residue classes (descriptor share / slot_shift; the activation buffer's ACT_LANES slices).
# 4: layer outputs kept in the activation buffer for the next layer (descriptor keep / resident / in_half).
FORMAT_VERSION = 4

# Magic value of the HW_ID register: ASCII "SPS1".
HW_ID_MAGIC = 0x31535053

# The HW_CONFIG register word: (field, low bit, width). The RTL builds it with the generated SV function
# `hw_config_word`; the driver decodes it with `HwConfig.from_words`.
HW_CONFIG_FIELDS = (
    ("rows", 0, 8),
    ("cols", 8, 8),
    ("format_version", 16, 8),
    ("axi_bytes_log2", 24, 4),          # log2(AXI data bytes)
    ("max_patterns_minus_1", 28, 4),
)
# The HW_BUFFERS register word: buffer sizes in KiB.
HW_BUFFERS_FIELDS = (
    ("act_buf_kib", 0, 16),
    ("weight_buf_kib", 16, 16),
)


def _pack_word(layout, values: dict) -> int:
    word = 0
    for name, lo, width in layout:
        if not 0 <= values[name] < 1 << width:
            raise ValueError(f"{name}={values[name]} does not fit in {width} bits")
        word |= values[name] << lo
    return word


def _unpack_word(layout, word: int) -> dict:
    return {name: word >> lo & ((1 << width) - 1) for name, lo, width in layout}


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


@dataclass(frozen=True)
class HwConfig:
    name: str                   # short name used on the command line and in overlay folders
    rows: int                   # R: filters computed at once (rows of the systolic array)
    cols: int                   # C: output pixels computed at once (columns of the array)
    axi_data_bits: int = 128    # width of the AXI4 master data bus to DDR
    act_buf_bytes: int = 131072     # on-chip activation buffer: one whole input feature map must fit
    weight_buf_bytes: int = 81920   # on-chip weight buffer: one row group (I * K * R bytes) must fit
    max_patterns: int = 16      # largest P the indexing unit holds
    act_bits: int = 8           # activation width (signed, zero point 0)
    weight_bits: int = 8        # weight width (signed, symmetric, per output channel)
    acc_bits: int = 32          # accumulator and bias width
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        # The same rules as the RTL's elaboration checks (hw_src/rtl/sps_core.sv), so that no configuration
        # the compiler accepts is one the hardware cannot be built for.
        def bad(what: str) -> ValueError:
            return ValueError(f"HwConfig {self.name}: {what}")
        if self.axi_data_bits not in (64, 128):
            raise bad(f"axi_data_bits must be 64 or 128, got {self.axi_data_bits}")
        beat = self.axi_data_bits // 8
        if not (_power_of_two(self.cols) and 2 <= self.cols <= 2 * beat):
            raise bad(f"cols must be a power of two in 2..{2 * beat} (twice the AXI data bytes), got {self.cols}")
        if not (_power_of_two(self.rows) and self.rows <= beat):
            raise bad(f"rows must be a power of two in 1..{beat} (AXI data bytes), got {self.rows}")
        if not (_power_of_two(self.act_buf_bytes) and self.act_buf_bytes % (2 * beat) == 0
                and self.act_buf_bytes % 1024 == 0 and self.act_buf_bytes < 1 << 26):
            raise bad(f"act_buf_bytes must be a power of two of 1 KiB .. 32 MiB, got {self.act_buf_bytes}")
        if (self.weight_buf_bytes <= 0 or self.weight_buf_bytes % 1024 or self.weight_buf_bytes % self.rows
                or self.weight_buf_bytes >= 1 << 26):
            raise bad(f"weight_buf_bytes must be a whole number of KiB below 64 MiB and a multiple of rows, "
                      f"got {self.weight_buf_bytes}")
        if not 1 <= self.max_patterns <= 16:
            raise bad(f"max_patterns must be in 1..16, got {self.max_patterns}")
        if (self.act_bits, self.weight_bits, self.acc_bits) != (8, 8, 32):
            raise bad("only 8-bit activations/weights with 32-bit accumulators")

    @property
    def fingerprint(self) -> int:
        """The 32-bit HW_CONFIG register value (fields: HW_CONFIG_FIELDS)."""
        return _pack_word(HW_CONFIG_FIELDS, {
            "rows": self.rows, "cols": self.cols, "format_version": self.format_version,
            "axi_bytes_log2": (self.axi_data_bits // 8).bit_length() - 1,
            "max_patterns_minus_1": self.max_patterns - 1})

    @property
    def buffers_word(self) -> int:
        """The 32-bit HW_BUFFERS register value (fields: HW_BUFFERS_FIELDS)."""
        return _pack_word(HW_BUFFERS_FIELDS, {"act_buf_kib": self.act_buf_bytes // 1024,
                                              "weight_buf_kib": self.weight_buf_bytes // 1024})

    @classmethod
    def from_words(cls, config_word: int, buffers_word: int, name: str = "board") -> "HwConfig":
        """The HwConfig a core reports in HW_CONFIG / HW_BUFFERS (the inverse of fingerprint / buffers_word).

        Raises ValueError when the words describe no valid configuration (e.g. reads of an empty address)."""
        c = _unpack_word(HW_CONFIG_FIELDS, config_word)
        b = _unpack_word(HW_BUFFERS_FIELDS, buffers_word)
        return cls(name=name, rows=c["rows"], cols=c["cols"], axi_data_bits=8 << c["axi_bytes_log2"],
                   act_buf_bytes=b["act_buf_kib"] * 1024, weight_buf_bytes=b["weight_buf_kib"] * 1024,
                   max_patterns=c["max_patterns_minus_1"] + 1, format_version=c["format_version"])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "HwConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def describe(self) -> str:
        return (f"{self.name}: {self.rows}x{self.cols} array, {self.axi_data_bits}-bit AXI, "
                f"act buffer {self.act_buf_bytes // 1024} KiB, weight buffer {self.weight_buf_bytes // 1024} KiB, "
                f"P<={self.max_patterns}, format v{self.format_version}")

    def same_hardware(self, other: "HwConfig") -> bool:
        """True when a program packed for `other` runs on `self` (the name does not matter)."""
        a, b = self.to_dict(), other.to_dict()
        a.pop("name"), b.pop("name")
        return a == b


# Named configurations, shared by compiler, runtime, RTL tests and the overlay build.
CONFIGS = {
    # ZCU104 (XCZU7EV): 16 x 16 = 256 int8 MACs. Weight buffer 144 KiB: half of it holds a dense row group of a
    # 512-input-channel 3x3 layer (512 x 9 x 16 = 73,728 B), so dense mode prefetches there too. It is one
    # 128-bit x 9216 RAM; the depth need not be a power of two (9216 = 9 x 1024 fills whole BRAM cascades):
    # Yosys maps it to 34 RAMB36, where rounding up to 256 KiB would take at least 57.
    "zcu104": HwConfig(name="zcu104", rows=16, cols=16, weight_buf_bytes=147456),
    # The same device with twice the columns (512 MACs; docs/hardware.md, "An array sized for the device"):
    # output rows of 32 bytes span two or three 128-bit beats. Not the default: no Vivado timing run yet.
    "zcu104_16x32": HwConfig(name="zcu104_16x32", rows=16, cols=32, weight_buf_bytes=147456),
    # Small array for fast RTL simulation in CI.
    "small": HwConfig(name="small", rows=2, cols=4, axi_data_bits=64,
                      act_buf_bytes=16384, weight_buf_bytes=8192),
    # The small array with more columns than an AXI beat has bytes (C = 16, 8-byte beats): the RTL tests of
    # activation rows written in several beats and output segments that span up to three beats.
    "small_wide": HwConfig(name="small_wide", rows=2, cols=16, axi_data_bits=64,
                           act_buf_bytes=16384, weight_buf_bytes=8192),
}

DEFAULT_CONFIG = "zcu104"


def get_config(name_or_cfg: "str | HwConfig | None" = None) -> HwConfig:
    if isinstance(name_or_cfg, HwConfig):
        return name_or_cfg
    name = name_or_cfg or DEFAULT_CONFIG
    if name not in CONFIGS:
        raise KeyError(f"unknown hardware configuration {name!r}; known: {', '.join(sorted(CONFIGS))}")
    return CONFIGS[name]
