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
