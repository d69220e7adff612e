"""Layer outputs kept in the activation buffer (descriptor keep / resident / in_half, FORMAT_VERSION 4): the rules
of hw/residency.py on hand-made chains, the C golden model (`sim`) reporting each broken rule as BAD_SHAPE at its
layer with the same message and running a valid chain bit for bit like the same program without the flags, the
virtual board refusing what the core refuses, and model_file refusing a file whose chain is broken."""
import dataclasses

import numpy as np
import pytest

from layer_factory import as_program, random_layer, side_by_side
from sps_pynq import model_file
from sps_pynq.errors import ModelFileError
from sps_pynq.hw import residency
from sps_pynq.hw.config import get_config
from sps_pynq.hw.descriptor import DESC_BYTES, Op, pack_program
from sps_pynq.hw.regmap import ErrorCode
from sps_pynq.native import golden
from sps_pynq.runtime.session import Session

# (config, P, channels, H, W, slot_shift): shared 3x3 CONVs of `channels` in and out on an H x W map (pad 1)
SHAPES = {"zcu104": (8, 16, 8, 16, 1), "small": (8, 16, 8, 8, 1)}


def _chain(name, seed=0):
    """A valid chain on one arena: shared CONV (keep) -> shared CONV (resident, in_half 1, keep) -> ADD (resident,
    in_half 0) of the second CONV's output and the first's (a residual). Returns (hw, arena, descriptors)."""
    hw = get_config(name)
    P, C, H, W, ss = SHAPES[name]
    rng = np.random.default_rng(seed)
    conv = dict(op="pps", stride=1, pad=1, patterns=P, out_c=C, in_c=C, in_h=H, in_w=W, nnz=4, slot_shift=ss)
    parts = [random_layer(rng, hw, **conv), random_layer(rng, hw, **conv),
             random_layer(rng, hw, op="add", in_c=C, in_h=H, in_w=W)]
    arena, (c1, c2, add) = side_by_side([(a, [d]) for a, d in parts])
    assert (c1.out_c, c1.out_h, c1.out_w) == (C, H, W)
    c1 = dataclasses.replace(c1, keep=True)
    c2 = dataclasses.replace(c2, in_offset=c1.out_offset, resident=True, in_half=True, keep=True)
    add = dataclasses.replace(add, in_offset=c2.out_offset, in2_offset=c1.out_offset, resident=True, in_half=False)
    return hw, arena, [c1, c2, add]


def _plain(descs):
    return [dataclasses.replace(d, keep=False, resident=False, in_half=False) for d in descs]


def _problems(descs, hw):
    return [residency.problem(prev, d, hw) for prev, d in zip([None] + descs[:-1], descs)]


def _broken(name):
    """(label, descriptors with one rule broken, hw to run on, failing layer, message of residency.problem)."""
    hw, arena, (c1, c2, add) = _chain(name)
    beat = hw.axi_data_bits // 8
    P, C, H, W, ss = SHAPES[name]
    r = dataclasses.replace
    from sps_pynq.hw import bands
    kept = residency.kept_end(c1, hw)
    # act_buf_bytes (powers of two): one whose half slice holds the kept map and the first CONV's own input, one
    # whose half slice is just short of the kept map
    roomy = 16 * (1 << (max(kept, bands.act_end(c1, hw)) - 1).bit_length())
    tight = 16 * (1 << (kept - 1).bit_length()) // 2
    cases = [
        ("in_half alone", [c1, c2, r(add, resident=False, in_half=True)], hw, 2, "in_half without resident"),
        ("keep on a plain CONV", [r(c1, share=False), c2, add], hw, 0,
         "keep: only a CONV with shared classes or an ADD can keep its output"),
        ("keep on a band", [r(c1, out_map_h=H), c2, add], hw, 0,
         f"keep: keeps only a whole output map (out_map_h {H}: a band)"),
        ("keep of planes not a multiple of C", [r(c1, out_h=H - 1, out_w=W - 1), c2, add], hw, 0,
         f"keep: needs output planes a multiple of C={hw.cols} bytes ({H - 1}x{W - 1}) at an offset a multiple of "
         f"{beat} ({c1.out_offset})"),
        ("keep at an unaligned offset", [r(c1, out_offset=c1.out_offset + beat // 2), c2, add], hw, 0,
         f"keep: needs output planes a multiple of C={hw.cols} bytes ({H}x{W}) at an offset a multiple of "
         f"{beat} ({c1.out_offset + beat // 2})"),
        ("kept map over half a slice", [c1, c2, add], dataclasses.replace(hw, act_buf_bytes=tight), 0,
         f"keep: kept map takes {kept} bytes of each slice, more than half a slice ({tight // 16})"),
        ("own input over half a slice", [c1, c2, r(add, resident=False, keep=True)],
         dataclasses.replace(hw, act_buf_bytes=roomy), 2,
         f"keep: its own input takes {C * H * W} bytes of half 0, more than half a slice ({roomy // 16})"),
        ("keep_skew alone", [r(c1, keep=False, keep_skew=True), c2, add], hw, 0, "keep_skew without keep"),
        ("resident on a plain pool", [c1, r(c2, op=Op.MAXPOOL, share=False, keep=False), add], hw, 1,
         "resident: only a CONV, a shared pool or an ADD can read a kept input"),
        ("kept unskewed, read skewed", [c1, r(c2, stride_w=2), add], hw, 1,
         "resident: the layer before kept the map unskewed, this one reads it skewed (stride_w 2)"),
        ("kept skewed, read unskewed", [r(c1, keep_skew=True), c2, add], hw, 1,
         "resident: the layer before kept the map skewed, this one reads it unskewed (stride_w 1)"),
        ("resident band", [c1, r(c2, in_map_h=H), add], hw, 1,
         f"resident: reads only a whole kept map (in_map_h {H}: a band)"),
        ("resident first layer", [r(c1, resident=True, in_half=True), c2, add], hw, 0,
         "resident: the layer before does not keep its output"),
        ("layer before keeps nothing", [r(c1, keep=False), c2, add], hw, 1,
         "resident: the layer before does not keep its output"),
        ("another map", [c1, r(c2, in_offset=c1.in_offset), add], hw, 1,
         f"resident: the layer before kept {C}x{H}x{W} at offset {c1.out_offset}, this one reads {C}x{H}x{W} at "
         f"{c1.in_offset}"),
        ("another shape", [c1, r(c2, in_h=H - 1, out_h=H - 1), add], hw, 1,
         f"resident: the layer before kept {C}x{H}x{W} at offset {c1.out_offset}, this one reads {C}x{H - 1}x{W} "
         f"at {c1.out_offset}"),
        ("wrong half after a loaded input", [c1, r(c2, in_half=False), add], hw, 1,
         "resident: in_half 0 is not the half the layer before kept into"),
        ("wrong half after a resident input", [c1, c2, r(add, in_half=True)], hw, 2,
         "resident: in_half 1 is not the half the layer before kept into"),
    ]
    return arena, cases


# ------------------------------------------------------------------ (a) the rules of hw/residency.py

@pytest.mark.parametrize("name", ["zcu104", "small"])
def test_valid_chain_passes_the_rules(name):
    hw, _, descs = _chain(name)
    assert _problems(descs, hw) == [None, None, None]
    assert _problems(_plain(descs), hw) == [None, None, None]
    # the second CONV's own input would be in the upper half: only its kept map is sized against half a slice
    assert residency.keep_problem(descs[1], hw) is None
    assert residency.kept_end(descs[0], hw) <= residency.half_bytes(hw)


@pytest.mark.parametrize("name", ["zcu104", "small"])
def test_each_broken_rule_names_itself(name):
    _, cases = _broken(name)
    for label, descs, hw, layer, message in cases:
        problems = _problems(descs, hw)
        assert problems[layer] == message, (label, problems)
        assert all(p is None for p in problems[:layer]), (label, problems)


def test_kept_planes_are_whole_beats_and_buffer_rows():
    """bands.kept_stride: a kept plane rounded up to the beat or to C, whichever is wider (zcu104_16x32: C = 32
    columns, twice the 16-byte beat), so a kept row is one buffer row; the chain keeps its rules there too."""
    from sps_pynq.hw import bands
    for name, plane, stride in (("zcu104", 64, 64), ("zcu104", 80, 80), ("zcu104_16x32", 64, 64),
                                ("zcu104_16x32", 96, 96), ("small", 12, 16), ("small_wide", 16, 16)):
        hw = get_config(name)
        assert bands.kept_stride(plane, hw) == stride, (name, plane)
        assert stride % hw.cols == 0 and stride % (hw.axi_data_bits // 8) == 0
    _, _, descs = _chain("zcu104")
    assert _problems(descs, get_config("zcu104_16x32")) == [None, None, None]


# ------------------------------------------------------------------ (b) the C golden model and the sim backend

def _run_golden(arena, descs, hw):
    prog = np.frombuffer(pack_program(descs), np.uint8)
    inner = np.concatenate([arena, prog])
    return inner, golden().run(inner, arena.size, len(descs), hw, threads=1)


@pytest.mark.parametrize("name", ["zcu104", "small"])
def test_golden_reports_each_broken_rule_at_its_layer(name):
    arena, cases = _broken(name)
    for label, descs, hw, layer, message in cases:
        _, result = _run_golden(arena, descs, hw)
        assert (result.error, result.layer) == (ErrorCode.BAD_SHAPE, layer), (label, result)
        op = descs[layer].op.name
        assert result.message == f"{op} {message} (kept maps, hw/residency.py)", (label, result.message)


def test_golden_checks_the_rules_before_the_buffers_and_alignment():
    """A kept map breaking a rule is BAD_SHAPE even when the layer also overflows or is misaligned."""
    hw, arena, (c1, c2, add) = _chain("zcu104")
    bad = dataclasses.replace(c1, share=False, weight_offset=c1.weight_offset + 1)
    _, result = _run_golden(arena, [bad, c2, add], hw)
    assert (result.error, result.layer) == (ErrorCode.BAD_SHAPE, 0) and "keep:" in result.message
    _, result = _run_golden(arena, [dataclasses.replace(c1, weight_offset=c1.weight_offset + 1), c2, add], hw)
    assert result.error == ErrorCode.MISALIGNED


def test_golden_without_buffer_checks_skips_only_the_sizes():
    """check_buffers=False (act_buf_bytes 0) skips the half-slice sizes, as the other buffer limits; the other
    rules still hold."""
    hw, arena, descs = _chain("zcu104")
    small = dataclasses.replace(hw, act_buf_bytes=1024)
    inner = np.concatenate([arena, np.frombuffer(pack_program(descs), np.uint8)])
    assert golden().run(inner.copy(), arena.size, 3, small, check_buffers=False).error == 0
    assert golden().run(inner.copy(), arena.size, 3, small).error == ErrorCode.BAD_SHAPE
    broken = [descs[0], dataclasses.replace(descs[1], in_half=False), descs[2]]
    inner = np.concatenate([arena, np.frombuffer(pack_program(broken), np.uint8)])
    result = golden().run(inner, arena.size, 3, small, check_buffers=False)
    assert (result.error, result.layer) == (ErrorCode.BAD_SHAPE, 1)


@pytest.mark.parametrize("name", ["zcu104", "small"])
def test_valid_chain_runs_bit_exact_like_the_plain_program(name):
    hw, arena, descs = _chain(name, seed=1)
    x = np.random.default_rng(2).integers(-128, 128, size=(2, descs[0].in_c, descs[0].in_h, descs[0].in_w))
    x = x.astype(np.int8)
    outs = {}
    for label, ds in (("kept", descs), ("plain", _plain(descs))):
        for backend in ("sim", "ref"):
            with Session(as_program(arena, ds, hw), backend=backend) as s:
                outs[label, backend] = s.run_int8(x)
    want = outs["plain", "ref"]
    assert all(np.array_equal(got, want) for got in outs.values())
    # the whole arena too (every layer's output, nothing else written)
    kept, _ = _run_golden(arena, descs, hw)
    plain, result = _run_golden(arena, _plain(descs), hw)
    assert result.error == 0 and np.array_equal(kept[:arena.size], plain[:arena.size])


def test_golden_resumed_one_layer_at_a_time():
    """cfg.resume (the virtual board runs one layer a call): the descriptor before prog_offset is the layer before."""
    hw, arena, descs = _chain("zcu104")
    g = golden()
    for ds, error in ((descs, 0), ([descs[0], dataclasses.replace(descs[1], in_half=False), descs[2]],
                                   ErrorCode.BAD_SHAPE)):
        inner = np.concatenate([arena, np.frombuffer(pack_program(ds), np.uint8)])
        cfg = g.ffi.new("sps_golden_config *", {
            "rows": hw.rows, "cols": hw.cols, "max_patterns": hw.max_patterns, "act_buf_bytes": hw.act_buf_bytes,
            "weight_buf_bytes": hw.weight_buf_bytes, "beat_bytes": hw.axi_data_bits // 8, "num_threads": 1,
            "resume": 1})
        status = g.ffi.new("sps_golden_status *")
        buf = g.ffi.from_buffer("uint8_t[]", inner)
        assert g.lib.sps_golden_run(buf, inner.size, arena.size + DESC_BYTES, 1, cfg, g.ffi.NULL, status) == error
        if error:
            assert b"in_half 0 is not the half" in g.ffi.string(status.message)
        cfg.resume = 0                                    # without it the resident layer has nothing before it
        assert g.lib.sps_golden_run(buf, inner.size, arena.size + DESC_BYTES, 1, cfg, g.ffi.NULL,
                                    status) == ErrorCode.BAD_SHAPE
        assert b"the layer before does not keep its output" in g.ffi.string(status.message)


def test_virtual_board_refuses_what_the_core_refuses():
    from sps_pynq.hw.regmap import REG, CtrlBit
    from sps_pynq.virtual_board.core import VirtualDdr, VirtualSpsCore
    hw, arena, descs = _chain("zcu104")
    for ds, error, layer in ((descs, 0, None), ([descs[0], descs[1], dataclasses.replace(descs[2], in_half=True)],
                                                ErrorCode.BAD_SHAPE, 2)):
        ddr = VirtualDdr()
        core = VirtualSpsCore(hw, ddr)
        inner = np.concatenate([arena, np.frombuffer(pack_program(ds), np.uint8)])
        bid, phys = ddr.allocate(inner.size)
        ddr.buffers[bid][1][:] = inner.tobytes()
        for reg, value in (("ARENA_LO", phys & 0xFFFFFFFF), ("ARENA_HI", phys >> 32), ("PROG_OFFSET", arena.size),
                           ("NUM_LAYERS", len(ds))):
            core.write(REG[reg], value)
        core.write(REG["CTRL"], CtrlBit.START)
        core.wait_idle(30)
        assert core.read(REG["CTRL"]) & CtrlBit.DONE
        assert core.read(REG["ERROR_CODE"]) == error
        if error:
            assert core.read(REG["CUR_LAYER"]) == layer
        else:
            expected, _ = _run_golden(arena, ds, hw)
            assert np.array_equal(np.frombuffer(bytes(ddr.buffers[bid][1]), np.uint8)[:arena.size],
                                  expected[:arena.size])


# ------------------------------------------------------------------ (c) model_file

def test_model_file_loads_a_valid_chain_and_refuses_a_broken_one(tmp_path):
    hw, arena, (c1, c2, add) = _chain("zcu104")
    names = ["conv1", "conv2", "add"]
    good = model_file.save(as_program(arena, [c1, c2, add], hw, names), tmp_path / "good.spsmodel")
    loaded = model_file.load(good)
    assert [(d.keep, d.resident, d.in_half) for d in loaded.descriptors()] == [
        (True, False, False), (True, True, True), (False, True, False)]
    cases = [
        ([c1, c2, dataclasses.replace(add, in_half=True)],
         "layer 2 (add): resident: in_half 1 is not the half the layer before kept into (kept maps, "
         "hw/residency.py); "),
        ([dataclasses.replace(c1, keep=False), c2, add],
         "layer 1 (conv2): resident: the layer before does not keep its output (kept maps, hw/residency.py)"),
        ([dataclasses.replace(c1, in_half=True), c2, add], "layer 0 (conv1): in_half without resident"),
    ]
    for descs, message in cases:
        path = model_file.save(as_program(arena, descs, hw, names), tmp_path / "bad.spsmodel")
        with pytest.raises(ModelFileError) as e:
            model_file.load(path)
        text = str(e.value)
        assert text.startswith(f"{path}: ") and message in text and text.endswith("re-pack the model"), text


# ------------------------------------------------------------------ (d) the compiler's keep_outputs pass

def _residual_net(c=16, side=8):
    """conv3x3(3->c) + relu = a, conv3x3(c->c) + relu = b, conv3x3(c->c) = d, relu(b + d) (ONNX Add(b, d): its
    *second* input is the map just before), conv3x3 stride 2 of the sum: the last three PPS-projected."""
    from onnx import helper
    from sps_pynq.compiler.testing import make_model
    rng = np.random.default_rng(5)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["a"], name="relu1"),
             helper.make_node("Conv", ["a", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["b"], name="relu2"),
             helper.make_node("Conv", ["b", "w3"], ["d"], name="conv3", pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["b", "d"], ["s"], name="add"),
             helper.make_node("Relu", ["s"], ["r"], name="relu3"),
             helper.make_node("Conv", ["r", "w4"], ["y"], name="conv4", pads=[1, 1, 1, 1], strides=[2, 2])]
    inits = {f"w{j}": rng.standard_normal((c, 3 if j == 1 else c, 3, 3)) for j in (1, 2, 3, 4)}
    return make_model(nodes, [("x", [1, 3, side, side])], ["y"], inits)


def test_compiler_chains_layers_and_swaps_the_add_inputs(capsys, tmp_path):
    from sps_pynq.cli import main
    from sps_pynq.commands.inspect import describe
    from sps_pynq.compiler import compile_model
    from sps_pynq.hw import cycles
    from sps_pynq.hw.descriptor import Op
    hw = get_config("zcu104")
    model = _residual_net()
    calib = np.random.default_rng(6).standard_normal((4, 3, 8, 8)).astype(np.float32)
    kw = dict(hw=hw, pps="8x4", first_layer_dense=True, calib=calib)
    kept = compile_model(model, keep_outputs=True, **kw)
    plain = compile_model(model, keep_outputs=False, **kw)
    assert kept.metadata["keep_outputs"] is True and plain.metadata["keep_outputs"] is False
    descs, before = kept.descriptors(), plain.descriptors()
    assert not any(d.keep or d.resident for d in before)
    by_op = [(d.op, d.resident, d.keep) for d in descs]
    conv3, add, conv4 = descs[2], descs[3], descs[4]
    assert add.op == Op.ADD and add.resident and add.keep
    # Add(b, d): input 1 is now d (conv3's output, kept), input 2 b, with their multipliers swapped
    assert add.in_offset == conv3.out_offset and add.in2_offset == before[3].in_offset
    assert (add.mult, add.mult2) == (before[3].mult2, before[3].mult)
    assert conv4.resident and conv4.stride_w == 2 and add.keep_skew and not conv4.share, by_op
    assert all(residency.problem(p, d, hw) is None for p, d in zip([None] + descs[:-1], descs))
    # the same integers out of both programs, fewer modelled cycles and DDR bytes
    x = np.random.default_rng(7).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with Session(plain, backend="sim") as s:
        want = np.asarray(s.run(x))
    for backend in ("sim", "ref"):
        with Session(kept, backend=backend) as s:
            assert np.array_equal(np.asarray(s.run(x)), want), backend
    modelled = [sum(c.total for c in cycles.program_cycles(p)) for p in (plain, kept)]
    assert modelled[1] < modelled[0]
    # inspect shows where each layer's input comes from
    rows = describe(kept)["layers"]
    assert [r["input_kept"] for r in rows] == [d.resident for d in descs]
    path = str(tmp_path / "k.spsmodel")
    model_file.save(kept, path)
    assert main(["inspect", path]) == 0
    out = capsys.readouterr().out
    assert "keep outputs True" in out and " kept " in out


def test_rtl_runs_a_compiled_chain_bit_exact():
    """The small CI core: the ADD keeps its output, the stride-2 CONV reads it skewed; rtl == sim."""
    from sps_pynq.backends import rtl_build
    from sps_pynq.compiler import compile_model
    if rtl_build.setup_verilator() is None:
        pytest.skip("verilator not installed")
    hw = get_config("small")
    calib = np.random.default_rng(6).standard_normal((4, 3, 8, 8)).astype(np.float32)
    program = compile_model(_residual_net(c=8), hw=hw, pps="8x4", first_layer_dense=True, calib=calib)
    assert any(d.resident and d.stride_w == 2 for d in program.descriptors())
    x = np.random.default_rng(8).standard_normal((1, 3, 8, 8)).astype(np.float32)
    outs = []
    for backend in ("sim", "rtl"):
        with Session(program, backend=backend) as s:
            outs.append(np.asarray(s.run(x)))
    assert np.array_equal(outs[0], outs[1])
