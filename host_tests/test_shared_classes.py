"""Shared residue classes (hw/layout.py "Shared classes", descriptor share / slot_shift): the C golden model
(`sim`) equals the numpy reference (`ref`) and the same layer without sharing, bit for bit; the rules give
BAD_SHAPE, the activation-buffer slices ACT_BUF_OVERFLOW; the compiler's fill_rows picks shared layers and the
cycle model counts them."""
import dataclasses

import numpy as np
import pytest

from layer_factory import random_layer
from sps_pynq import reference as ref
from sps_pynq.hw import bands, cycles, layout, traffic
from sps_pynq.hw.config import CONFIGS
from sps_pynq.hw.descriptor import pack_program
from sps_pynq.hw.regmap import ErrorCode
from sps_pynq.native import golden


def _run_sim(arena, descs, hw):
    prog = np.frombuffer(pack_program(descs), np.uint8)
    inner = np.concatenate([arena, prog])
    result = golden().run(inner, arena.size, len(descs), hw, threads=1)
    return inner, result


def _output(arena, d):
    out = np.empty((d.out_c, d.out_h * d.out_w), np.uint8)
    for o in range(d.out_c):
        start = d.out_offset + o * d.out_chan_stride
        out[o] = arena[start:start + d.out_h * d.out_w]
    return out


def _shared_and_plain(seed, hw, **kw):
    """The same random layer twice (same draws), once with shared classes, once without."""
    arena_s, ds = random_layer(np.random.default_rng(seed), hw, op="pps", stride=1, **kw)
    plain = {k: v for k, v in kw.items() if k != "slot_shift"}
    arena_p, dp = random_layer(np.random.default_rng(seed), hw, op="pps", stride=1, **plain)
    return (arena_s, ds), (arena_p, dp)


# (config, P, O, I, H, W, pad_top, pad_left, K, slot_shift)
SHAPES = [
    ("zcu104", 8, 16, 16, 8, 8, 1, 1, 4, 1),        # S = 8: one group for 16 filters
    ("zcu104", 8, 32, 16, 6, 8, 1, 1, 4, 2),        # S = 4, two groups
    ("zcu104", 8, 64, 8, 8, 16, 1, 1, 3, 3),        # S = 2, four groups
    ("zcu104", 8, 64, 24, 5, 16, 1, 1, 9, 4),       # S = 1: a slot as large as the array, idle rows none
    ("zcu104", 4, 16, 16, 8, 8, 1, 1, 4, 2),        # P = 4
    ("zcu104", 4, 37, 16, 9, 16, 1, 1, 5, 4),       # O not a multiple of P: idle rows inside slots
    ("zcu104", 8, 21, 8, 7, 16, 0, 1, 4, 2),        # padding in width only (out_w == in_w), 'valid' height
    ("zcu104", 2, 9, 32, 4, 16, 1, 1, 2, 3),        # P = 2
    ("small", 8, 16, 8, 4, 8, 1, 1, 4, 1),          # R = 2: slots of 2 rows, one class per group
    ("small", 8, 11, 16, 4, 8, 1, 1, 4, 1),
    ("small", 4, 8, 8, 8, 8, 1, 1, 3, 1),
    ("small", 2, 3, 8, 3, 8, 0, 1, 2, 1),
    ("small", 8, 8, 8, 4, 8, 1, 1, 4, 0),           # slots of one row: S = 2 classes a group
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "-".join(map(str, s)))
def test_shared_layer_equals_reference_and_the_plain_layer(shape):
    cfg, P, O, I, H, W, pt, pl, K, ss = shape
    hw = CONFIGS[cfg]
    (arena_s, ds), (arena_p, dp) = _shared_and_plain(hash(shape) % 2**32, hw, patterns=P, out_c=O, in_c=I,
                                                     in_h=H, in_w=W, pad_top=pt, pad_left=pl, nnz=K, slot_shift=ss)
    assert ds.share and ds.slot_shift == ss and not dp.share
    assert layout.share_problem(ds, hw) is None and bands.fits(ds, hw)
    assert (ds.out_h, ds.out_w) == (H + 2 * pt - 2, W)
    sim, result = _run_sim(arena_s, [ds], hw)
    assert result.error == 0, result
    expected = arena_s.copy()
    ref.run_layer(expected, ds, hw)
    assert (sim[:arena_s.size] == expected).all()
    plain = arena_p.copy()
    ref.run_layer(plain, dp, hw)
    assert (_output(sim, ds) == _output(plain, dp)).all()
    assert len(layout.row_groups(O, P, hw.rows, ss)) == -(-min(P, O) // layout.share_slots(P, hw.rows, ss))


def test_shared_layer_in_row_bands_and_with_the_weight_cache():
    """Bands of a shared layer (planes in_map_h * in_w apart, a multiple of the beat) and a cached second run."""
    hw = CONFIGS["zcu104"]
    arena, d = random_layer(np.random.default_rng(3), hw, op="pps", stride=1, patterns=8, out_c=32, in_c=16,
                            in_h=12, in_w=16, pad=1, nnz=4, slot_shift=2)
    parts = [bands.row_band(d, 0, 5), bands.row_band(d, 5, 12)]
    expected = arena.copy()
    ref.run_layer(expected, d, hw)
    prog = np.frombuffer(pack_program(parts), np.uint8)
    inner = np.concatenate([arena, prog])
    cache = golden().new_cache()
    for _ in range(2):
        assert golden().run(inner, arena.size, len(parts), hw, cache=cache).error == 0
        assert (inner[:arena.size] == expected).all()


def _bad_shape(hw, d, arena):
    _, result = _run_sim(arena, [d], hw)
    assert result.error == ErrorCode.BAD_SHAPE, result
    return result.message


def test_rule_violations_are_bad_shape_naming_the_rule():
    hw = CONFIGS["zcu104"]
    arena, d = random_layer(np.random.default_rng(4), hw, op="pps", stride=1, patterns=8, out_c=32, in_c=16,
                            in_h=8, in_w=16, pad=1, nnz=4, slot_shift=2)
    assert _run_sim(arena, [d], hw)[1].error == 0
    cases = [
        (dict(patterns=6, pattern_masks=d.pattern_masks[:6]), "P dividing 8"),
        (dict(pps=False, patterns=1, kh=3, kw=3, nnz=9, pattern_masks=[]), "P dividing 8"),
        (dict(in_c=12), "multiple of 8"),
        (dict(stride_w=2, out_w=8), "stride 1"),
        (dict(out_w=14), "out_w == in_w"),
        (dict(in_w=9, out_w=9), "multiple of 16 bytes"),
        (dict(slot_shift=1), "cannot hold a class of 4"),
        (dict(slot_shift=5), "slot of 32 rows"),
    ]
    for change, words in cases:
        bad = dataclasses.replace(d, **change)
        message = _bad_shape(hw, bad, arena)
        assert words in message and "shared classes" in message, (change, message)
        assert layout.share_problem(bad, hw) is not None
    # share off: slot_shift is ignored
    arena, d = random_layer(np.random.default_rng(4), hw, op="pps", stride=2, patterns=6, out_c=40, in_c=5,
                            in_h=8, in_w=9, pad=1, nnz=4)
    expected = arena.copy()
    ref.run_layer(expected, d, hw)
    sim, result = _run_sim(arena, [dataclasses.replace(d, slot_shift=7)], hw)
    assert result.error == 0 and (sim[:arena.size] == expected).all()


def test_share_rules_come_before_the_buffer_checks():
    """A misaligned weight offset or an input too large for the buffer still reports BAD_SHAPE first."""
    hw = CONFIGS["zcu104"]
    arena, d = random_layer(np.random.default_rng(5), hw, op="pps", stride=1, patterns=8, out_c=32, in_c=16,
                            in_h=8, in_w=16, pad=1, nnz=4, slot_shift=2)
    bad = dataclasses.replace(d, weight_offset=d.weight_offset + 1, in_c=12)
    _bad_shape(hw, bad, arena)
    bad = dataclasses.replace(d, weight_offset=d.weight_offset + 1)
    assert _run_sim(arena, [bad], hw)[1].error == ErrorCode.MISALIGNED


def test_activation_slices_overflow():
    """The input is split over 8 slices of act_buf_bytes / 8: a layer whose planes fit the buffer as a whole
    map can overflow its slices (planes padded to beats, in_c / 8 of them per slice)."""
    hw = dataclasses.replace(CONFIGS["zcu104"], act_buf_bytes=8192)      # slices of 1 KiB
    arena, d = random_layer(np.random.default_rng(6), hw, op="pps", stride=1, patterns=8, out_c=16, in_c=16,
                            in_h=16, in_w=16, pad=1, nnz=4, slot_shift=1)
    # 2 planes of 256 bytes a slice: lead + 256 + 15 -> 272 + 256 rounded up; fits 1 KiB
    assert bands.fits(d, hw) and _run_sim(arena, [d], hw)[1].error == 0
    arena2, d2 = random_layer(np.random.default_rng(6), hw, op="pps", stride=1, patterns=8, out_c=16, in_c=32,
                              in_h=16, in_w=16, pad=1, nnz=4, slot_shift=1)
    al = bands.act_load(d2, hw)
    assert al.slices == 8 and al.end == (d2.in_offset % 16 + 3 * 272 + 256 + 15) // 16 * 16 > 1024
    assert not bands.fits(d2, hw)
    assert d2.in_c * d2.in_h * d2.in_w <= hw.act_buf_bytes        # the plain layer would fit
    assert bands.fits(dataclasses.replace(d2, share=False), hw)
    _, result = _run_sim(arena2, [d2], hw)
    assert result.error == ErrorCode.ACT_BUF_OVERFLOW and "slice" in result.message, result


def test_models_count_shared_groups():
    hw = CONFIGS["zcu104"]
    _, d = random_layer(np.random.default_rng(7), hw, op="pps", stride=1, patterns=8, out_c=32, in_c=16,
                        in_h=8, in_w=16, pad=1, nnz=4, slot_shift=2)
    plain = dataclasses.replace(d, share=False)
    c_s, c_p = cycles.layer_cycles(d, hw), cycles.layer_cycles(plain, hw)
    assert (c_s.groups, c_p.groups) == (2, 8)
    assert c_s.mac == 2 * c_s.tiles * 16 * 4 == cycles.ideal_cycles(d, hw) < c_p.mac
    assert c_s.total < c_p.total
    t = traffic.layer_traffic(d, hw)
    assert t["weights"] == layout.weight_bytes(32, 16, 4, 8, 16, 2) == 2 * 16 * 4 * 16
    assert t["params"] == 2 * 16 * 16
    assert bands.act_load(d, hw).requests == 16


# ------------------------------------------------------------------ the compiler (fill_rows)

@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("hw_name", ["zcu104", "zcu104_16x32"])
def test_resnet20_with_fill_rows_shares_classes_and_sim_equals_ref(zoo_programs, hw_name):
    from sps_pynq.runtime.session import Session
    program = zoo_programs.compile("resnet20", hw=hw_name, pps="8x4", first_layer_dense=True, fill_rows=True)
    hw = program.hw
    descs = program.descriptors()
    shared = [d for d in descs if d.op.name == "CONV" and d.share]
    assert len(shared) >= 10
    for d in shared:
        assert layout.share_problem(d, hw) is None and bands.fits(d, hw)
    pools = [d for d in descs if d.op.name == "AVGPOOL"]
    assert len(pools) == 1 and pools[0].share and layout.share_problem(pools[0], hw) is None   # the GAP
    metas = [m for m in program.metadata["layers"] if m.get("encoded", {}).get("slot_shift") is not None]
    assert len(metas) >= 10 and all(m["P"] == 8 and m["K"] == 4 for m in metas)
    x = np.random.default_rng(8).integers(-128, 128, size=(2,) + program.inputs[0].shape).astype(np.int8)
    with Session(program, backend="sim") as s:
        want = s.run_int8(x)
    with Session(program, backend="ref") as s:
        got = s.run_int8(x)
    assert np.array_equal(got, want)
    # the same network without fill_rows: the same float model, other integer encodings -- the same MACs
    plain = zoo_programs.compile("resnet20", hw=hw_name, pps="8x4", first_layer_dense=True, fill_rows=False)
    assert program.conv_macs() == plain.conv_macs()
    with Session(program, backend="sim") as s:
        s.run_int8(x[:1])
        assert s.stats()["macs"] == plain.conv_macs()[0]


@pytest.mark.filterwarnings("ignore")
def test_shared_choice_beats_merged_only_on_resnet20():
    """Per layer the pass takes the fewest modelled cycles over plain and shared encodings: on ResNet-20 the
    network's modelled total falls below what merged classes alone reach."""
    pytest.importorskip("torch")
    from sps_pynq.compiler import import_and_lower
    from sps_pynq.compiler.fill_rows import choices, merge_classes, modelled_cycles
    hw = CONFIGS["zcu104"]
    _, layers, _ = import_and_lower("resnet20", hw=hw, pps="8x4", first_layer_dense=True, fill_rows=False)
    pps = [layer for layer in layers if layer.masks and len(layer.masks) > 1]
    merged_only = with_shared = 0
    for layer in pps:
        options = choices(layer, hw)
        merged_only += min(c[2] for c in options if c[3] is None)
        with_shared += min(c[2] for c in options)
    assert with_shared < 0.8 * merged_only
    merge_classes(layers, hw)
    assert sum(modelled_cycles(layer, layer.masks, hw, layer.slot_shift) for layer in pps) == with_shared
    assert sum(layer.slot_shift is not None for layer in pps) >= 10


@pytest.mark.filterwarnings("ignore")
def test_model_file_round_trip_and_checks_of_shared_layers(zoo_programs, tmp_path):
    """A packed model with shared layers loads (ceil(min(P, O) / S) groups of weights and parameters inside the
    image); an edited descriptor that breaks a rule, or whose groups no longer fit the image, is refused by name."""
    import dataclasses as dc

    from sps_pynq import model_file
    from sps_pynq.errors import ModelFileError
    from sps_pynq.hw.descriptor import DESC_BYTES
    from sps_pynq.commands.inspect import describe
    program = zoo_programs.compile("resnet20", hw="zcu104", pps="8x4", first_layer_dense=True, fill_rows=True)
    path = model_file.save(program, tmp_path / "r20.spsmodel")
    loaded = model_file.load(path)
    assert loaded.image == program.image
    rows = [r for r in describe(loaded)["layers"] if r.get("mode", "").endswith("-shared")]
    assert rows and all(r["row_groups"] * 16 * 16 == r["param_bytes"] for r in rows)
    descs = program.descriptors()
    j = next(k for k, d in enumerate(descs) if d.op.name == "CONV" and d.share)
    d = descs[j]
    for O in range(1, 80):
        for ss in range(0, 5):
            assert model_file.num_row_groups(O, 8, 16, ss) == len(layout.row_groups(O, 8, 16, ss))

    def edited(change):
        image = bytearray(program.image)
        at = program.prog_offset + j * DESC_BYTES
        image[at:at + DESC_BYTES] = dc.replace(d, **change).pack()
        return dc.replace(program, image=bytes(image))
    with pytest.raises(ModelFileError, match="share: a CONV with shared classes .* cannot hold a class"):
        model_file.check_program(edited({"slot_shift": d.slot_shift - 1}))
    with pytest.raises(ModelFileError, match="share: .* stride 1"):
        model_file.check_program(edited({"stride_w": 2, "out_w": d.out_w // 2}))
    gap = next(k for k, x in enumerate(descs) if x.op.name == "AVGPOOL")       # a shared pool (one output pixel)
    image = bytearray(program.image)
    at = program.prog_offset + gap * DESC_BYTES
    image[at:at + DESC_BYTES] = dc.replace(descs[gap], share=True).pack()
    model_file.check_program(dc.replace(program, image=bytes(image)))
    # (loading its input: a kept map of the old width would be refused first, by the residency rules)
    image[at:at + DESC_BYTES] = dc.replace(descs[gap], share=True, resident=False, in_half=False,
                                           in_w=descs[gap].in_w - 1).pack()
    with pytest.raises(ModelFileError, match="share: a AVGPOOL with shared classes"):
        model_file.check_program(dc.replace(program, image=bytes(image)))
    end = len(program.image) // 64 * 64
    groups = model_file.num_row_groups(d.out_c, d.patterns, 16, d.slot_shift)
    size = groups * layout.group_weight_bytes(d.in_c, d.nnz, 16)
    model_file.check_program(edited({"weight_offset": end - size}))         # the last bytes of the image: fits
    with pytest.raises(ModelFileError, match=f"weights \\({groups} row groups"):
        model_file.check_program(edited({"weight_offset": end - size + 64}))


def test_golden_statistics_count_shared_groups():
    """The sim backend's ideal MAC cycles (stats word 1) count the shared groups (layout.ideal_conv_cycles)."""
    from sps_pynq.program import STATS_RECORD_BYTES
    hw = CONFIGS["zcu104"]
    for O, ss in ((32, 2), (5, 0), (64, 3)):
        arena, d = random_layer(np.random.default_rng(O), hw, op="pps", stride=1, patterns=8, out_c=O, in_c=16,
                                in_h=8, in_w=16, pad=1, nnz=4, slot_shift=ss)
        prog = np.frombuffer(pack_program([d]), np.uint8)
        inner = np.concatenate([arena, prog, np.zeros(STATS_RECORD_BYTES, np.uint8)])
        stats = arena.size + prog.size
        assert golden().run(inner, arena.size, 1, hw, stats_offset=stats).error == 0
        word = int(inner[stats:stats + 16].view("<u4")[1])
        groups = -(-min(8, O) // layout.share_slots(8, 16, ss))
        assert word == layout.ideal_conv_cycles(O, 16, 4, 8, 8 * 16, 16, 16, ss) == groups * 8 * 16 * 4
