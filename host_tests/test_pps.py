"""PPS core: spec parsing, masks, projection optimality (brute force), detection round trips and rejections."""
import itertools
import time

import numpy as np
import pytest

from sps_pynq import pps
from sps_pynq.errors import NotPpsError, PpsShapeError, SpsError


def _rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ------------------------------------------------------------------------------------------------------- parsing
@pytest.mark.parametrize("text, want", [("8x4", (8, 4)), ("1x1", (1, 1)), ("16X9", (16, 9)), (" 2 x 3 ", (2, 3))])
def test_parse_pps_spec(text, want):
    assert pps.parse_pps_spec(text) == want


@pytest.mark.parametrize("text, words", [("8", "PxK"), ("ax4", "PxK"), ("0x4", "P=0"), ("17x4", "P=17"),
                                         ("8x0", "K=0"), ("8x10", "K=10"), ("", "PxK")])
def test_parse_pps_spec_rejects(text, words):
    with pytest.raises(PpsShapeError, match=words) as e:
        pps.parse_pps_spec(text)
    assert isinstance(e.value, ValueError) and isinstance(e.value, SpsError)


# --------------------------------------------------------------------------------------------------------- masks
def test_kernel_mask_follows_residue_classes():
    masks = [0b000010011, 0b110000001]                  # taps [0, 1, 4] and [0, 7, 8]
    m = pps.kernel_mask((3, 4, 3, 3), masks)
    assert m.shape == (3, 4, 3, 3) and m.dtype == bool
    for o in range(3):
        for i in range(4):
            taps = np.flatnonzero(m[o, i].reshape(9)).tolist()
            assert taps == pps.taps_of(masks[(o + i) % 2])
    # bit t is tap ky*3 + kx: tap 7 = row 2, column 1
    assert m[0, 1, 2, 1] and not m[0, 0, 2, 1]


def test_check_eligible():
    pps.check_eligible((8, 4, 3, 3))
    with pytest.raises(PpsShapeError, match=r"conv1.*\[8, 4, 1, 1\].*1x1"):
        pps.check_eligible((8, 4, 1, 1), name="conv1")
    with pytest.raises(PpsShapeError, match=r"fc.*4-D.*\[10, 512\]"):
        pps.check_eligible((10, 512), name="fc")
    with pytest.raises(PpsShapeError, match=r"dw.*groups=4"):
        pps.check_eligible((4, 1, 3, 3), groups=4, name="dw")
    with pytest.raises(PpsShapeError, match=r"5x5"):
        pps.project(_rand((2, 2, 5, 5)), 2, 4, name="c5")


# ---------------------------------------------------------------------------------------------------- projection
def _brute_force_best(w, P, K):
    """The most energy any PPS(P, K) table can keep, by enumerating all C(9, K)^P tables."""
    flat = w.reshape(w.shape[0], w.shape[1], 9).astype(np.float64) ** 2
    patterns = [pps.mask_of(c) for c in itertools.combinations(range(9), K)]
    best = -1.0
    for table in itertools.product(patterns, repeat=P):
        keep = pps.kernel_mask(w.shape, table).reshape(flat.shape)
        best = max(best, float(flat[keep].sum()))
    return best / float(flat.sum())


@pytest.mark.parametrize("P, K, seed", [(2, 2, 0), (3, 2, 1), (2, 3, 2), (1, 4, 3)])
def test_projection_is_optimal_against_brute_force(P, K, seed):
    w = _rand((3, 3, 3, 3), seed)
    proj = pps.project(w, P, K)
    assert proj.energy_kept == pytest.approx(_brute_force_best(w, P, K), rel=1e-12)
    # the energy reported is the energy of the tensor returned
    assert proj.energy_kept == pytest.approx(float((proj.weights.astype(np.float64) ** 2).sum()
                                                   / (w.astype(np.float64) ** 2).sum()), rel=1e-6)


def test_projection_structure_and_dtype():
    w = _rand((6, 5, 3, 3), 4)
    proj = pps.project(w, 4, 3)
    assert proj.weights.dtype == w.dtype and proj.weights.shape == w.shape
    assert proj.P == 4 and proj.K == 3 and all(pps.popcount(m) == 3 for m in proj.masks)
    inside = pps.kernel_mask(w.shape, proj.masks)
    assert np.all(proj.weights[~inside] == 0)
    assert np.array_equal(proj.weights[inside], w[inside])          # kept weights are unchanged
    assert 0 < proj.energy_kept < 1


def test_projection_ties_go_to_lowest_tap_and_zero_layer():
    w = np.zeros((2, 2, 3, 3), dtype=np.int8)
    proj = pps.project(w, 2, 3)
    assert proj.masks == [0b111, 0b111] and proj.energy_kept == 1.0
    w = np.ones((1, 1, 3, 3), dtype=np.float32)                      # all taps tie
    assert pps.project(w, 1, 2).masks == [0b11]


def test_projection_picks_the_heavy_taps_per_class():
    w = np.zeros((2, 2, 3, 3), dtype=np.float32)
    w[0, 0].flat[[8, 6]] = [5, 4]                                    # class 0: kernels (0,0), (1,1)
    w[1, 1].flat[[8, 0]] = [1, 3]
    w[0, 1].flat[[2, 3]] = [-2, 1]                                   # class 1: kernels (0,1), (1,0)
    w[1, 0].flat[[3]] = [-7]
    proj = pps.project(w, 2, 2)
    assert pps.taps_of(proj.masks[0]) == [6, 8]                      # 25+1 and 16 beat 9
    assert pps.taps_of(proj.masks[1]) == [2, 3]


def test_project_rejects_bad_p_k():
    with pytest.raises(PpsShapeError, match="P must be in 1..16"):
        pps.project(_rand((2, 2, 3, 3)), 17, 4)


# ----------------------------------------------------------------------------------------------------- detection
@pytest.mark.parametrize("O, I, P, K", [(16, 16, 8, 4), (32, 16, 4, 2), (8, 12, 3, 5), (16, 3, 16, 1),
                                        (20, 20, 1, 9), (7, 9, 5, 3)])
def test_detect_round_trip(O, I, P, K):
    proj = pps.project(_rand((O, I, 3, 3), O * I + P), P, K)
    info = pps.detect(proj.weights)
    assert (info.P, info.K, info.masks) == (P, K, proj.masks)
    info = pps.detect(proj.weights, P=P, K=K)
    assert (info.P, info.K, info.masks) == (P, K, proj.masks)


def test_detect_finds_the_period_of_a_repeating_table():
    # a PPS(8, 4) table that repeats every 4 patterns is the same tensor as PPS(4, 4): report the smaller table
    masks = [0b000011011, 0b011011000, 0b110110000, 0b000110110] * 2
    w = _rand((16, 16, 3, 3), 7) * pps.kernel_mask((16, 16, 3, 3), masks)
    info = pps.detect(w)
    assert (info.P, info.K, info.masks) == (4, 4, masks[:4])
    assert pps.detect(w, P=8).masks == masks


def test_detect_pads_thin_classes_with_lowest_unused_taps():
    masks = [pps.mask_of([4, 5, 7]), pps.mask_of([0, 8, 2])]
    w = _rand((4, 4, 3, 3), 8) * pps.kernel_mask((4, 4, 3, 3), masks)
    w[:, :, 1, 2] = 0                                                 # tap 5 pruned away in class 0
    info = pps.detect(w, P=2)
    assert info.K == 3 and pps.taps_of(info.masks[0]) == [0, 4, 7] and info.masks[1] == masks[1]
    info = pps.detect(w, P=2, K=5)                                  # a required K pads every class
    assert [pps.taps_of(m) for m in info.masks] == [[0, 1, 2, 4, 7], [0, 1, 2, 3, 8]]


def test_detect_all_zero_layer():
    w = np.zeros((4, 4, 3, 3), dtype=np.int8)
    info = pps.detect(w)
    assert (info.P, info.K, info.masks) == (1, 1, [0b1])
    assert pps.detect(w, P=8, K=4).masks == [0b1111] * 8


def test_detect_dense_layer_is_pps_1_9():
    info = pps.detect(_rand((8, 8, 3, 3)))
    assert (info.P, info.K, info.masks) == (1, 9, [0x1FF])


def test_detect_rejects_kernel_with_too_many_nonzeros():
    proj = pps.project(_rand((16, 16, 3, 3), 9), 8, 4)
    w = proj.weights.copy()
    w[3, 5] = 1.0                                                    # a dense kernel
    with pytest.raises(NotPpsError, match=r"conv7 \(weight shape \[16, 16, 3, 3\]\) is not PPS\(8, 4\): "
                                          r"kernel \(o=3, i=5\) has 9 nonzeros at taps \[0, 1, 2, 3, 4, 5, 6, 7, "
                                          r"8\], more than K=4"):
        pps.detect(w, K=4, name="conv7")


def test_detect_rejects_kernel_outside_its_class_pattern():
    proj = pps.project(_rand((16, 16, 3, 3), 10), 8, 4)
    w = proj.weights.copy()
    r = (3 + 5) % 8
    own = pps.taps_of(proj.masks[r])
    other = [t for t in range(9) if t not in own][:1]
    w[3, 5].flat[other] = 100.0                                      # a heavy stray tap in class 0
    w[3, 5].flat[own[:1]] = 0.0                                      # kernel keeps <= K nonzeros
    with pytest.raises(NotPpsError) as e:
        pps.detect(w, P=8, K=4, name="c")
    msg = str(e.value)
    assert "is not PPS(8, 4)" in msg and f"class (o+i) mod 8 = {r} has 5 distinct nonzero taps" in msg
    # the pattern most kernels of the class follow is the projected one, so kernel (3, 5) is the odd one out
    assert f"kernel (o=3, i=5) has nonzeros at taps {other} outside pattern 0 = taps {own}" in msg
    # without a required P, detection finds no P with K=4 either and explains its best candidate
    with pytest.raises(NotPpsError, match=r"not PPS\(8, 4\)"):
        pps.detect(w, K=4)


def test_detect_message_names_the_stray_kernel():
    masks = [pps.mask_of([0, 1, 2, 3])] * 2
    w = np.ones((2, 2, 3, 3), dtype=np.float32) * pps.kernel_mask((2, 2, 3, 3), masks)
    w[1, 1] = 0
    w[1, 1].flat[[6]] = 0.5                                          # class 0 = (0,0), (1,1): tap 6 is stray
    with pytest.raises(NotPpsError, match=r"kernel \(o=1, i=1\) has nonzeros at taps \[6\] outside pattern 0 = "
                                          r"taps \[0, 1, 2, 3\]"):
        pps.detect(w, P=2, K=4)


def test_detect_rejects_bad_shape_and_range():
    with pytest.raises(PpsShapeError, match="1x1"):
        pps.detect(np.ones((4, 4, 1, 1)))
    with pytest.raises(PpsShapeError, match="P=17"):
        pps.detect(np.ones((4, 4, 3, 3)), P=17)


def test_check_table():
    pps.check_table([0b1111, 0b11110000], K=4)
    with pytest.raises(NotPpsError, match=r"tap counts \[4, 3\]"):
        pps.check_table([0b1111, 0b111])
    with pytest.raises(NotPpsError, match="9-bit"):
        pps.check_table([1 << 9])


def test_vgg16_sized_project_and_detect_is_fast():
    # VGG16's 13 conv layers: project + detect must stay well under a second in total (measured, not asserted)
    chans = [(64, 3), (64, 64), (128, 64), (128, 128), (256, 128), (256, 256), (256, 256), (512, 256),
             (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
    rng = np.random.default_rng(0)
    layers = [rng.standard_normal((o, i, 3, 3)).astype(np.float32) for o, i in chans]
    t0 = time.perf_counter()
    for w in layers:
        info = pps.detect(pps.project(w, 8, 4).weights)
        assert (info.P, info.K) == (8, 4)
    print(f"VGG16 project+detect: {time.perf_counter() - t0:.3f} s")


def test_pps_and_storage_cli_import_without_torch():
    # the board has no torch: pps (and the CLI's storage command module) must import without it
    import subprocess
    import sys
    code = ("import sys; sys.modules['torch'] = None; sys.modules['onnx'] = None\n"
            "import sps_pynq.pps, sps_pynq.analysis.storage, sps_pynq.commands.storage\n"
            "print(sps_pynq.pps.project(__import__('numpy').ones((2, 2, 3, 3)), 2, 3).masks)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[7, 7]"
