"""The C golden model against the numpy reference, bit for bit, and its handling of bad descriptors."""
import dataclasses
import os
import struct

import numpy as np
import pytest

from layer_factory import in_bands, random_layer, random_program
from sps_pynq import reference as ref
from sps_pynq.errors import BackendError, DeviceError
from sps_pynq.hw import layout
from sps_pynq.hw.config import CONFIGS
from sps_pynq.hw.descriptor import DESC_BYTES, Op, pack_program
from sps_pynq.hw.regmap import ErrorCode
from sps_pynq.native import golden
from sps_pynq.program import STATS_RECORD_BYTES

GUARD = 256


def _with_program(arena, descs):
    """Arena + descriptors appended, inside a larger buffer with guard bytes on both sides."""
    prog = np.frombuffer(pack_program(descs), np.uint8)
    size = arena.size + prog.size
    big = np.full(size + 2 * GUARD, 0xA5, np.uint8)
    inner = big[GUARD:GUARD + size]
    inner[:arena.size] = arena
    inner[arena.size:] = prog
    return big, inner, arena.size


def _compare(rng, hw, arena, descs, threads=0):
    big, inner, prog_offset = _with_program(arena, descs)
    expected = inner.copy()
    ref.run_program(expected, descs, hw)
    result = golden().run(inner, prog_offset, len(descs), hw, threads=threads)
    assert result.error == 0, result
    assert (big[:GUARD] == 0xA5).all() and (big[-GUARD:] == 0xA5).all()
    diff = np.flatnonzero(inner != expected)
    assert diff.size == 0, f"{diff.size} bytes differ, first at {diff[:5]}: {descs}"


def test_c_equals_numpy_on_2000_small_random_layers():
    rng = np.random.default_rng(2024)
    for n in range(2000):
        hw = CONFIGS["small" if n % 2 else "zcu104"]
        kind = ["pps", "pps", "dense", "fc", "maxpool", "avgpool", "gap", "add"][n % 8]
        conv = {"out_c": int(rng.integers(1, 2 * hw.rows + 4))} if kind in ("pps", "dense", "fc") else {}
        arena, d = random_layer(rng, hw, op=kind, in_c=int(rng.integers(1, 7)), in_h=int(rng.integers(1, 11)),
                                in_w=int(rng.integers(1, 11)), **conv)
        _compare(rng, hw, arena, [d], threads=1)


@pytest.mark.parametrize("kind", ["pps", "dense", "fc", "maxpool", "avgpool", "add"])
def test_c_equals_numpy_on_larger_layers_with_threads(kind):
    """Layers big enough to take the multi-threaded path, many residue classes and partial pixel tiles."""
    rng = np.random.default_rng(["pps", "dense", "fc", "maxpool", "avgpool", "add"].index(kind) + 100)
    hw = CONFIGS["zcu104"]
    for _ in range(3):
        h = int(rng.integers(9, 30))
        conv = {"out_c": int(rng.integers(30, 90))} if kind in ("pps", "dense", "fc") else {}
        arena, d = random_layer(rng, hw, op=kind, in_c=int(rng.integers(20, 70)), in_h=h,
                                in_w=h if kind != "fc" else 3, **conv)
        for threads in (1, 2):
            _compare(rng, hw, arena, [d], threads=threads)


def test_pps_extremes_of_p_and_k():
    rng = np.random.default_rng(5)
    for hw in CONFIGS.values():
        for P in (1, 2, hw.max_patterns):
            for K in (1, 4, 9):
                arena, d = random_layer(rng, hw, op="pps", patterns=P, nnz=K, in_c=int(rng.integers(1, 9)),
                                        out_c=int(rng.integers(1, 40)), stride=int(rng.integers(1, 3)))
                _compare(rng, hw, arena, [d])


def test_c_equals_numpy_on_random_programs():
    rng = np.random.default_rng(11)
    for n in range(40):
        hw = CONFIGS["small" if n % 2 else "zcu104"]
        arena, descs = random_program(rng, hw, n_layers=int(rng.integers(2, 7)))
        _compare(rng, hw, arena, descs)


def test_bands_compute_what_the_whole_layers_compute():
    """Programs with every CONV/pool cut into random row or channel bands: the C model on the bands equals the
    numpy reference on the whole layers (and on the bands), byte for byte."""
    rng = np.random.default_rng(12)
    for n in range(60):
        hw = CONFIGS["small" if n % 2 else "zcu104"]
        arena, descs = random_program(rng, hw, n_layers=int(rng.integers(1, 5)))
        banded = in_bands(rng, descs)
        whole = arena.copy()
        ref.run_program(whole, descs, hw)
        in_parts = arena.copy()
        ref.run_program(in_parts, banded, hw)
        assert np.array_equal(whole, in_parts), f"reference: bands differ from the whole layers {banded}"
        big, inner, prog_offset = _with_program(arena, banded)
        result = golden().run(inner, prog_offset, len(banded), hw)
        assert result.error == 0, result
        assert np.array_equal(inner[:arena.size], whole), f"C model: bands differ from the whole layers {banded}"


def test_band_checks():
    """A band higher than its map, a band too large for the activation buffer and an ADD with map heights are
    refused; a band's input need not be aligned."""
    hw = CONFIGS["small"]
    rng = np.random.default_rng(3)
    arena, d = random_layer(rng, hw, op="dense", in_c=4, in_h=12, in_w=12, out_c=3, kh=3, kw=3, pad=1, stride=1)
    from sps_pynq.hw.bands import row_band
    band = row_band(d, 5, 9)
    assert band.in_offset % 64 and band.in_map_h == 12
    _compare(rng, hw, arena, [band])
    for bad, code in ((dataclasses.replace(band, in_map_h=3), ErrorCode.BAD_SHAPE),
                      (dataclasses.replace(band, out_map_h=2), ErrorCode.BAD_SHAPE)):
        big, inner, prog_offset = _with_program(arena, [bad])
        assert golden().run(inner, prog_offset, 1, hw).error == code
    arena, a = random_layer(rng, hw, op="add")
    big, inner, prog_offset = _with_program(arena, [dataclasses.replace(a, in_map_h=a.in_h)])
    assert golden().run(inner, prog_offset, 1, hw).error == ErrorCode.BAD_SHAPE
    # 64 channels of 16x16 fit the 16 KiB buffer whole; as a band (planes padded to a beat) they do not
    arena, d = random_layer(rng, hw, op="dense", in_c=64, in_h=16, in_w=16, out_c=2, kh=1, kw=1, pad=0, stride=1)
    big, inner, prog_offset = _with_program(arena, [d])
    assert golden().run(inner, prog_offset, 1, hw).error == 0
    tall = dataclasses.replace(d, in_map_h=17, out_map_h=16)
    big, inner, prog_offset = _with_program(arena, [tall])
    assert golden().run(inner, prog_offset, 1, hw).error == ErrorCode.ACT_BUF_OVERFLOW


@pytest.mark.slow
def test_c_equals_numpy_on_8000_random_layers():
    rng = np.random.default_rng(77)
    for n in range(8000):
        hw = CONFIGS["small" if n % 3 == 0 else "zcu104"]
        arena, d = random_layer(rng, hw)
        _compare(rng, hw, arena, [d])


def test_requant_corner_cases_match():
    """Shift 0 and 63, the largest multiplier, ties in both directions, through AVGPOOL and ADD."""
    rng = np.random.default_rng(8)
    hw = CONFIGS["small"]
    for mult, shift in [(1, 0), (2**31 - 1, 63), (2**31 - 1, 31), (3, 1), (1, 1), (12345, 20), (0, 5)]:
        for kind in ("avgpool", "gap", "add"):
            extra = {"mult2": mult // 2} if kind == "add" else {}
            arena, d = random_layer(rng, hw, op=kind, mult=mult, shift=shift, **extra)
            _compare(rng, hw, arena, [d])


def test_stats_records():
    rng = np.random.default_rng(9)
    hw = CONFIGS["zcu104"]
    arena, descs = random_program(rng, hw, n_layers=3)
    stats_offset = (arena.size + 63) // 64 * 64
    arena = np.concatenate([arena, np.zeros(stats_offset - arena.size + 3 * STATS_RECORD_BYTES, np.uint8)])
    big, inner, prog_offset = _with_program(arena, descs)
    r = golden().run(inner, prog_offset, 3, hw, stats_offset=stats_offset)
    assert r.error == 0 and len(r.layer_ns) == 3
    words = inner[stats_offset:stats_offset + 3 * STATS_RECORD_BYTES].view("<u4").reshape(3, 4)
    for d, w in zip(descs, words):
        assert w[0] > 0 and w[2] == 0 and w[3] == 0          # elapsed ns, stall cycles 0, reserved 0
        if d.op == Op.CONV:
            groups = len(layout.row_groups(d.out_c, d.patterns if d.pps else 1, hw.rows))
            tiles = -(-(d.out_h * d.out_w) // hw.cols)
            assert w[1] == groups * tiles * d.in_c * d.nnz == layout.ideal_conv_cycles(
                d.out_c, d.in_c, d.nnz, d.patterns if d.pps else 1, d.out_h * d.out_w, hw.rows, hw.cols)
        else:
            assert w[1] == 0


# ------------------------------------------------------------------ bad descriptors

def _run_bad(hw, arena, descs, **kw):
    big, inner, prog_offset = _with_program(arena, descs)
    before = big.copy()
    r = golden().run(inner, prog_offset, len(descs), hw, **kw)
    assert (big[:GUARD] == 0xA5).all() and (big[-GUARD:] == 0xA5).all()
    return r, before, big


@pytest.mark.parametrize("change, code", [
    ({"op": 7}, ErrorCode.BAD_OP),
    ({"in_c": 0}, ErrorCode.BAD_SHAPE),
    ({"out_h": 1000}, ErrorCode.BAD_SHAPE),
    ({"nnz": 3, "pps": False}, ErrorCode.BAD_SHAPE),
    ({"patterns": 17}, ErrorCode.BAD_SHAPE),
    ({"kh": 5, "kw": 5}, ErrorCode.BAD_SHAPE),
    ({"pad_top": 3}, ErrorCode.BAD_SHAPE),
    ({"in_offset": 1 << 30}, ErrorCode.AXI_ERROR),
    ({"weight_offset": (1 << 32) - 64}, ErrorCode.AXI_ERROR),
    ({"param_offset": 65}, ErrorCode.MISALIGNED),     # CONV maps may start anywhere (bands), records not
    ({"in_c": 5000}, ErrorCode.ACT_BUF_OVERFLOW),
])
def test_bad_descriptor_gives_error_code_and_writes_nothing(change, code):
    rng = np.random.default_rng(12)
    hw = CONFIGS["zcu104"]
    arena, d = random_layer(rng, hw, op="pps", patterns=4, nnz=4, in_c=6, in_h=8, in_w=8, out_c=20, stride=1,
                            pad=1)
    arena2, first = random_layer(rng, hw, op="maxpool")
    # layer 0: a good maxpool in its own region; layer 1: the bad conv
    shift = (arena2.size + 63) // 64 * 64
    for name in ("in_offset", "out_offset", "weight_offset", "param_offset"):
        setattr(d, name, getattr(d, name) + shift)
    combined = np.concatenate([arena2, np.zeros(shift - arena2.size, np.uint8), arena])
    for k, v in change.items():
        if k == "op":
            continue
        setattr(d, k, getattr(d, k) + v if k.endswith("_offset") and v < 1 << 20 and k != "in_offset" else v)
    descs = [first, d]
    big, inner, prog_offset = _with_program(combined, descs)
    if "op" in change:      # Descriptor.pack refuses an unknown op: patch the word
        word = struct.unpack_from("<I", inner, prog_offset + DESC_BYTES)[0]
        struct.pack_into("<I", inner, prog_offset + DESC_BYTES, (word & ~0xF) | change["op"])
    before = inner.copy()
    r = golden().run(inner, prog_offset, 2, hw)
    assert r.error == code and r.layer == 1, r
    assert r.message
    expected = before.copy()
    ref.run_layer(expected, first, hw)
    assert (inner == expected).all()               # layer 0 ran, layer 1 wrote nothing
    assert (big[:GUARD] == 0xA5).all() and (big[-GUARD:] == 0xA5).all()
    with pytest.raises(DeviceError, match="layer 1 \\(conv_b\\)"):
        r.raise_for_error(["pool_a", "conv_b"])


def test_weight_buffer_overflow():
    rng = np.random.default_rng(13)
    hw = CONFIGS["small"]                           # 8 KiB weight buffer, R = 2
    arena, d = random_layer(rng, hw, op="dense", kh=3, kw=3, in_c=600, in_h=3, in_w=3, out_c=2, pad=1)
    r, _, _ = _run_bad(hw, arena, [d])
    assert r.error == ErrorCode.WEIGHT_BUF_OVERFLOW
    assert golden().run(_with_program(arena, [d])[1], arena.size, 1, hw, check_buffers=False).error == 0


def test_program_or_stats_outside_arena():
    rng = np.random.default_rng(14)
    hw = CONFIGS["small"]
    arena, d = random_layer(rng, hw, op="add")
    big, inner, prog_offset = _with_program(arena, [d])
    assert golden().run(inner, prog_offset, 2, hw).error == ErrorCode.AXI_ERROR       # 2nd descriptor missing
    assert golden().run(inner, prog_offset, 1, hw, stats_offset=inner.size - 8).error == ErrorCode.AXI_ERROR
    assert (big[:GUARD] == 0xA5).all() and (big[-GUARD:] == 0xA5).all()


def test_fuzzed_descriptors_never_write_outside_the_arena():
    """Valid layers with one field replaced by a random value: either an error or the reference's result."""
    rng = np.random.default_rng(15)
    hw = CONFIGS["small"]
    names = ["in_c", "in_h", "in_w", "out_c", "out_h", "out_w", "kh", "kw", "stride_h", "stride_w", "pad_top",
             "pad_left", "patterns", "nnz", "in_offset", "out_offset", "weight_offset", "param_offset",
             "in2_offset", "shift", "mult"]
    widths = {"in_c": 16, "out_c": 16, "in_offset": 32, "out_offset": 32, "weight_offset": 32,
              "param_offset": 32, "in2_offset": 32, "mult": 32}
    errors = 0
    for n in range(400):
        arena, d = random_layer(rng, hw, in_c=int(rng.integers(1, 5)), in_h=int(rng.integers(1, 8)),
                                in_w=int(rng.integers(1, 8)))
        name = names[n % len(names)]
        bits = widths.get(name, 8)
        value = int(rng.integers(0, 1 << min(bits, 12))) if rng.random() < 0.7 else int(rng.integers(0, 1 << bits))
        if name.endswith("offset") and rng.random() < 0.5:
            value = value // 64 * 64
        setattr(d, name, value)
        try:
            pack_program([d])
        except ValueError:
            continue
        r, before, big = _run_bad(hw, arena, [d])
        if r.error:
            errors += 1
            assert (big == before).all()
    assert errors > 100


def test_missing_compiler_gives_one_clear_error(tmp_path, monkeypatch):
    from sps_pynq.native import build
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("SPS_PYNQ_CACHE", str(tmp_path / "cache"))
    with pytest.raises(BackendError, match="build-essential") as info:
        build.build()
    assert "no-such-cc" in str(info.value) and info.value.__cause__ is not None


def test_weight_cache_never_changes_results():
    """Runs with a prepared-weights cache equal the reference, also after weights, params or the descriptor
    change in the arena between runs."""
    rng = np.random.default_rng(16)
    hw = CONFIGS["zcu104"]
    arena, d = random_layer(rng, hw, op="pps", in_c=20, in_h=12, in_w=12, out_c=40, relu=False)
    big, inner, prog_offset = _with_program(arena, [d])
    cache = golden().new_cache()
    wlen = layout.weight_bytes(d.out_c, d.in_c, d.nnz, d.patterns, hw.rows)
    for step in range(5):
        if step == 2:      # a weight changes (kept inside the pattern: any byte of the packed block is a tap)
            inner[d.weight_offset + int(rng.integers(wlen // 2))] ^= 0x11
        if step == 3:      # a bias changes
            inner[d.param_offset] ^= 0x40
        if step == 4:      # the descriptor changes: ReLU on
            d.relu = True
            inner[prog_offset:prog_offset + DESC_BYTES] = np.frombuffer(d.pack(), np.uint8)
        expected = inner.copy()
        ref.run_layer(expected, d, hw)
        assert golden().run(inner, prog_offset, 1, hw, cache=cache).error == 0
        assert (inner == expected).all(), step


# ------------------------------------------------------------------ whole networks (compiler + zoo)

@pytest.fixture
def net(zoo_programs):
    """(program, PPS-projected onnxruntime session, input shape) of a zoo network; the program compiled once per
    test process (conftest's zoo_programs, shared with the other tests that ask for the same options)."""
    def net_(name):
        pytest.importorskip("torch")
        import onnxruntime as ort
        from sps_pynq import zoo
        from sps_pynq.compiler import project_onnx
        program = zoo_programs.compile(name, n_calib=32, pps=(8, 4))
        sess = ort.InferenceSession(project_onnx(name, pps=(8, 4)).SerializeToString(),
                                    providers=["CPUExecutionProvider"])
        return program, sess, zoo.input_shape(name)
    return net_


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vgg16", "resnet18", "resnet20"])
def test_whole_network_c_equals_numpy(name, net):
    from sps_pynq.runtime.preprocess import quantize
    program, _, shape = net(name)
    descs = program.descriptors()
    rng = np.random.default_rng(3)
    for _ in range(2):
        arena = np.zeros(program.arena_size, np.uint8)
        arena[:len(program.image)] = np.frombuffer(program.image, np.uint8)
        t = program.inputs[0]
        arena[t.offset:t.offset + t.nbytes] = quantize(rng.standard_normal(shape), t.scale).reshape(-1).view(np.uint8)
        expected = arena.copy()
        ref.run_program(expected, descs, program.hw)
        r = golden().run(arena, program.prog_offset, program.num_layers, program.hw,
                         stats_offset=program.stats_offset)
        assert r.error == 0, r
        stats = slice(program.stats_offset, program.stats_offset + program.num_layers * STATS_RECORD_BYTES)
        arena[stats] = expected[stats]        # the only bytes allowed to differ: the stats records
        assert np.array_equal(arena, expected)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vgg16", "resnet18", "resnet20"])
def test_whole_network_against_onnxruntime(name, net):
    """50 inputs from the calibration distribution (scripts/accuracy_sim.py does 1,000): top-1 agreement and the
    largest output error in output LSBs (measured: <= 4.3 LSB, 100% agreement; see docs/golden.md)."""
    from sps_pynq.runtime.session import Session
    program, sess, shape = net(name)
    xs = np.random.default_rng(2).standard_normal((50,) + shape).astype(np.float32)
    in_name = sess.get_inputs()[0].name
    expected = np.concatenate([sess.run(None, {in_name: x[None]})[0].reshape(1, -1) for x in xs])
    with Session(program, backend="sim") as s:
        got = s.run(xs).reshape(len(xs), -1)
    err_lsb = np.abs(got - expected).max() / program.outputs[0].scale
    agree = np.mean(np.argmax(got, 1) == np.argmax(expected, 1))
    assert err_lsb < 10, err_lsb
    assert agree >= 0.96, agree


def test_conv_requant_extremes_per_channel():
    """CONV parameter records with shifts across 0..63, multipliers up to 2^31-1 and large biases: the
    vectorized requantization must match the spec's int64 rule, including saturation and ReLU."""
    rng = np.random.default_rng(17)
    hw = CONFIGS["zcu104"]
    for n in range(30):
        arena, d = random_layer(rng, hw, op=["pps", "dense"][n % 2], in_c=int(rng.integers(1, 9)), in_h=9,
                                in_w=int(rng.integers(5, 40)), out_c=int(rng.integers(1, 40)), stride=1)
        groups = len(layout.row_groups(d.out_c, d.patterns if d.pps else 1, hw.rows))
        rec = arena[d.param_offset:d.param_offset + groups * hw.rows * 16].view("<i4").reshape(-1, 4)
        live = rec[:, 1] != 0
        k = int(live.sum())
        rec[live, 0] = rng.integers(-2**31, 2**31, k)                        # bias: may wrap the int32 sum
        rec[live, 1] = np.where(rng.random(k) < 0.3, 2**31 - 1, rng.integers(0, 2**31, k))
        rec[live, 2] = rng.choice([0, 1, 2, 31, 32, 33, 62, 63], k)
        _compare(rng, hw, arena, [d])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_threads_after_fork():
    """The helper threads are persistent; a forked child (multiprocessing) must still run threaded layers."""
    rng = np.random.default_rng(18)
    hw = CONFIGS["zcu104"]
    arena, d = random_layer(rng, hw, op="pps", in_c=64, in_h=20, in_w=20, out_c=64)
    big, inner, prog_offset = _with_program(arena, [d])
    expected = inner.copy()
    ref.run_layer(expected, d, hw)
    assert golden().run(inner.copy(), prog_offset, 1, hw, threads=2).error == 0     # helpers now exist
    pid = os.fork()
    if pid == 0:
        out = inner.copy()
        ok = golden().run(out, prog_offset, 1, hw, threads=2).error == 0 and np.array_equal(out, expected)
        os._exit(0 if ok else 3)
    assert os.waitpid(pid, 0)[1] == 0


@pytest.mark.skipif(os.uname().machine not in ("x86_64", "AMD64"), reason="x86: build without AVX2")
def test_portable_code_paths_match():
    """The plain-C paths (what an aarch64 board compiles) against numpy: the same model built without AVX2."""
    from sps_pynq.native import GoldenModel
    from sps_pynq.native.build import BASE_FLAGS, build
    portable = GoldenModel(build(flags=BASE_FLAGS + ["-mno-avx2", "-mno-avx"]))
    rng = np.random.default_rng(19)
    for n in range(300):
        hw = CONFIGS["small" if n % 3 == 0 else "zcu104"]
        kind = ["pps", "dense", "fc", "maxpool", "avgpool", "add"][n % 6]
        size = {"in_c": int(rng.integers(1, 40)), "in_h": int(rng.integers(1, 12)),
                "in_w": int(rng.integers(1, 12 if kind == "fc" else 30))}        # FC: K = h * w fits 8 bits
        arena, d = random_layer(rng, hw, op=kind, **size)
        big, inner, prog_offset = _with_program(arena, [d])
        expected = inner.copy()
        ref.run_layer(expected, d, hw)
        assert portable.run(inner, prog_offset, 1, hw, threads=1 + n % 2, check_buffers=False).error == 0
        assert np.array_equal(inner, expected), d


def test_maxpool_2x2_stride2_fast_path():
    """The unclipped 2x2/2 pool path, odd and even map sizes (the last row/column dropped), with and without ReLU."""
    rng = np.random.default_rng(20)
    hw = CONFIGS["zcu104"]
    for n in range(60):
        arena, d = random_layer(rng, hw, op="maxpool", kh=2, kw=2, stride=2, pad=0, relu=bool(n % 2),
                                in_c=int(rng.integers(1, 70)), in_h=int(rng.integers(2, 40)),
                                in_w=int(rng.integers(2, 40)))
        _compare(rng, hw, arena, [d])


def test_missing_setuptools_is_named(tmp_path, monkeypatch):
    """Python >= 3.12 venvs lack setuptools, which cffi needs to drive the compiler: say that, not 'no gcc'."""
    from sps_pynq.native import build

    def no_setuptools(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'setuptools'")
    monkeypatch.setattr(build, "_compile", no_setuptools)
    monkeypatch.setenv("SPS_PYNQ_CACHE", str(tmp_path / "cache"))
    with pytest.raises(BackendError, match="pip install setuptools"):
        build.build()
