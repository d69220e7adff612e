"""The generated SystemVerilog package, C header and register doc match the Python definitions."""
from sps_pynq.hw import codegen
from sps_pynq.hw.descriptor import Descriptor, Op


def test_generated_files_are_fresh():
    stale = codegen.stale_files()
    assert not stale, f"regenerate with `python -m sps_pynq.hw.codegen`: {stale}"


def test_descriptor_round_trip():
    d = Descriptor(op=Op.CONV, in_offset=4096, in_c=3, in_h=32, in_w=32, out_offset=8192, out_c=64, out_h=32,
                   out_w=32, kh=3, kw=3, pad_top=1, pad_left=1, pad_bottom=1, pad_right=1, relu=True, pps=True,
                   patterns=2, nnz=4, weight_offset=64, param_offset=128, pattern_masks=[0b000011011, 0b110110000])
    back = Descriptor.unpack(d.pack())
    assert back == d


def test_hw_config_refuses_what_the_rtl_refuses():
    import pytest
    from sps_pynq.hw.config import HwConfig
    for bad, match in ((dict(rows=3, cols=4), "rows must be a power of two"),
                       (dict(rows=32, cols=4), "rows must be a power of two in 1..16"),
                       (dict(rows=2, cols=1), "cols must be a power of two in 2..32"),
                       (dict(rows=2, cols=32, axi_data_bits=64), "cols must be a power of two in 2..16"),
                       (dict(rows=2, cols=4, act_buf_bytes=3 * 4096), "act_buf_bytes must be a power of two"),
                       (dict(rows=2, cols=4, weight_buf_bytes=1000), "weight_buf_bytes must be a whole number"),
                       (dict(rows=2, cols=4, max_patterns=17), "max_patterns")):
        with pytest.raises(ValueError, match=match):
            HwConfig(name="x", **bad)
    ok = HwConfig(name="x", rows=1, cols=2, axi_data_bits=64, act_buf_bytes=1024, weight_buf_bytes=1024)
    assert HwConfig.from_words(ok.fingerprint, ok.buffers_word).same_hardware(ok)
    wide = HwConfig(name="x", rows=16, cols=32, weight_buf_bytes=147456)      # C = two 16-byte beats
    assert HwConfig.from_words(wide.fingerprint, wide.buffers_word).same_hardware(wide)
