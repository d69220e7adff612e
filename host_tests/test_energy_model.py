"""The energy model's arithmetic on hand-computed small cases (sps_pynq/analysis/energy_model.py), with a fake cycle
model so that only the event counting and pricing are tested here; the constants table against its document."""
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from sps_pynq.analysis import energy_model as em
from sps_pynq.hw.config import CONFIGS
from sps_pynq.hw.cycles import LayerCycles
from sps_pynq.hw.descriptor import Descriptor, Op

SMALL = CONFIGS["small"]          # R = 2, C = 4, 64-bit AXI (8-byte beats)
DOC = Path(__file__).resolve().parents[1] / "docs" / "energy_model.md"


# The cycle model's own result type, with no load cycles: what a fake cycle model returns.
FakeCycles = partial(LayerCycles, load=0)


def pps_layer(**kw):
    """2 -> 4 channels, 4x4 map, 3x3 pad 1, PPS(2, 4): classes {0, 2} and {1, 3}, one row group each on R = 2."""
    d = dict(op=Op.CONV, in_c=2, in_h=4, in_w=4, out_c=4, out_h=4, out_w=4, kh=3, kw=3, pad_top=1, pad_left=1,
             pad_bottom=1, pad_right=1, pps=True, patterns=2, nnz=4, pattern_masks=[0b000011011, 0b110110000])
    d.update(kw)
    return Descriptor(**d)


def unit_constants(**kw):
    k = {key: 1.0 for key in em.CONSTANTS}
    k.update(static_w=0.0, mac_idle_fraction=0.5)
    k.update(kw)
    return k


def test_sps_events_of_a_pps_layer_by_hand():
    ev = em.sps_events(pps_layer(), SMALL, FakeCycles(total=100, mac=80))
    # 4 tiles of C = 4 pixels, 2 row groups, I*K = 8 steps: 64 ideal MAC cycles; 80 given (16 replays)
    assert ev.cycles == 100 and ev.mac_cycles == 80
    assert ev.mac_active == 4 * 16 * 2 * 4 == 512                 # O x pixels x I x K
    assert ev.mac_idle == 80 * 2 * 4 - 512 == 128                # slots R x C per MAC cycle
    assert ev.act_read_bits == 8 * 4 * 80                        # C bytes per MAC cycle, one stream
    assert ev.weight_read_bits == 8 * 2 * 80                     # R bytes per MAC cycle
    assert ev.act_write_bits == 8 * 4 * 8                        # 32 input bytes = 4 beats of 8 bytes
    assert ev.weight_write_bits == 8 * 2 * 16                    # 2 groups x align(2 * 4 * 2, 16) bytes
    assert ev.param_write_bits == 8 * 2 * 2 * 16                 # 2 groups x R records of 16 bytes
    assert ev.param_read_bits == 2 * 4 * 2 * 128                 # groups x tiles x R records
    assert ev.output_bits == 2 * 8 * 64 + 2 * 4 * 2 * 4 * 32     # FIFO in + out, shadow bank per tile
    assert ev.addr_adds == 2 * 4 * 80 and ev.decode_adds == 80 and ev.routed_bits == 8 * 4 * 80
    assert ev.requants == 64
    assert ev.ddr_read_bytes == 128 + 32 + 64 + 32 and ev.ddr_write_bytes == 64   # descriptor, weights, params, map
    split = em.sps_events(pps_layer(), SMALL, FakeCycles(total=100, mac=80), nonzero_weights=30)   # 2 of 32 zero
    assert (split.mac_active, split.mac_zero_weight, split.mac_idle) == (30 * 16, 2 * 16, 640 - 512)


def test_shared_layers_read_whole_words_and_add_buffers_one_input():
    """Shared classes read and route 8-slice words (8 x C bytes a MAC cycle); an ADD writes and reads only input 1
    in the buffer (input 2 streams past it)."""
    plain = em.sps_events(pps_layer(in_c=8, patterns=2), SMALL, FakeCycles(total=100, mac=80))
    shared = em.sps_events(pps_layer(in_c=8, patterns=2, share=True, slot_shift=1), SMALL,
                           FakeCycles(total=100, mac=80))
    assert shared.act_read_bits == 8 * plain.act_read_bits == 8 * 8 * 4 * 80
    assert shared.routed_bits == 8 * plain.routed_bits
    add = Descriptor(op=Op.ADD, in_c=2, in_h=4, in_w=8, out_c=2, out_h=4, out_w=8)            # 64-byte inputs
    ev = em.sps_events(add, SMALL, FakeCycles(total=50, mac=0))
    assert ev.act_write_bits == ev.act_read_bits == 8 * 64


def test_stored_nonzeros_reads_the_packed_weights():
    from sps_pynq.hw import layout
    d = pps_layer(weight_offset=64)
    w = np.zeros((4, 2, 3, 3), dtype=np.int8)
    for o in range(4):
        for i in range(2):
            taps = layout.taps_of_mask(d.pattern_masks[(o + i) % 2])
            w[o, i].flat[taps[:3]] = [1, -2, 3]                  # 3 of each kernel's 4 taps nonzero
    image = bytes(64) + layout.pack_weights(w, SMALL.rows, d.pattern_masks)
    prog = type("P", (), {"image": image, "hw": SMALL})()
    assert em.stored_nonzeros(prog, d) == 4 * 2 * 3
    assert em.stored_nonzeros(prog, pps_layer(weight_offset=4096)) is None        # outside the image


def test_energy_prices_each_event_once():
    ev = em.Events(cycles=10, mac_active=3, mac_idle=4, act_read_bits=5, weight_write_bits=6, index_read_bits=7,
                   param_read_bits=8, output_bits=9, routed_bits=11, addr_adds=12, decode_adds=13, requants=14,
                   ddr_read_bytes=2, ddr_write_bytes=1)
    k = unit_constants(mac_pj=2.0, bram_pj_per_bit=3.0, reg_pj_per_bit=5.0, ddr_pj_per_bit=7.0, add16_pj=11.0,
                       requant_pj=13.0, ff_clock_pj=1e-3, static_w=0.5)
    e = ev.energy(k, clock_mhz=100.0)
    pj = 1e-12
    assert e["mac"] == pytest.approx(pj * 2.0 * (3 + 0.5 * 4))
    ev.mac_zero_weight = 6
    assert ev.energy(k, 100.0)["mac"] == pytest.approx(pj * 2.0 * (3 + 0.5 * (4 + 6)))
    assert e["onchip"] == pytest.approx(pj * (3.0 * (5 + 6 + 7) + 5.0 * (8 + 9)))
    assert e["ddr"] == pytest.approx(pj * 7.0 * 8 * 3)
    assert e["control"] == pytest.approx(pj * (1e-3 * em.CORE_FLIP_FLOPS * 10 + 11.0 * (12 + 13) + 5.0 * 11
                                               + 13.0 * 14))
    assert e["static"] == pytest.approx(0.5 * 10 / 100e6)


def test_magnitude_mask_and_row_fillers():
    w = np.array([[3.0, -5.0, 1.0, 2.0]])
    assert em.magnitude_mask(w, 0.5).tolist() == [[True, True, False, False]]
    assert em.magnitude_mask(np.ones(4), 0.5).tolist() == [True, True, False, False]     # ties: by position
    nz = np.zeros((3, 40), dtype=bool)
    nz[0, [0, 17]] = True          # a gap of 16 zeros: one filler
    nz[1, [33]] = True             # 33 leading zeros: two fillers
    nz[2, [1, 2]] = True           # none (trailing zeros need none)
    assert em.row_fillers(nz, 15).tolist() == [1, 2, 0]


def tiny_q():
    """Filter 0: nonzeros at flattened positions 0 and 17; filter 1: at 4 (I = 2, 3x3: 18 positions)."""
    q = np.zeros((2, 2, 3, 3), dtype=np.int8)
    q.reshape(2, -1)[0, [0, 17]] = [5, -3]
    q.reshape(2, -1)[1, 4] = 7
    return q


def test_format_work_uses_the_storage_reports_widths():
    from sps_pynq.analysis import storage
    q = tiny_q()
    csr = em.format_work("csr", q, P=2, K=4)
    assert csr.entries.tolist() == [2, 1] and csr.nonzeros == 3
    assert csr.index_bits_per_entry == 5                  # ceil(log2 18)
    assert csr.index_bits_per_tile == 3 * 2               # (O + 1) pointers of ceil(log2(3 + 1)) bits
    assert csr.stored_bits == 3 * 8 + 3 * 5 + 3 * 2 == storage.sparse_bits(q.reshape(2, -1))["csr"].total
    coo = em.format_work("coo", q, 2, 4)
    assert coo.index_bits_per_entry == 1 + 5 and coo.stored_bits == 3 * 8 + 3 * 6
    bm = em.format_work("bitmap", q, 2, 4)
    assert bm.index_bits_per_tile == 2 * 18 and bm.stored_bits == 3 * 8 + 36
    rel = em.format_work("relative", q, 2, 4)
    assert rel.entries.tolist() == [3, 1]                  # filter 0: one filler for its gap of 16
    assert rel.index_bits_per_entry == 4 and rel.stored_bits == storage.sparse_bits(q.reshape(2, -1))["relative"].total
    pid = em.format_work("pattern_id", q, P=2, K=4)
    assert pid.entries.tolist() == [8, 8] and pid.nonzeros == 2 * 2 * 4
    assert pid.index_bits_per_tile == 2 * 2 * 1 and pid.stored_bits == 2 * 2 * 4 * 8 + 2 * 2 * 1 + 2 * 9
    with pytest.raises(ValueError):
        em.format_work("csc", q, 2, 4)


def test_format_cycles_wait_for_the_busiest_row():
    d = pps_layer(in_c=1, out_c=4)
    work = em.RowWork("csr", np.array([3, 1, 2, 2]), nonzeros=8, index_bits_per_entry=4, stored_bits=8 * 8 + 40,
                      decode_adds_per_entry=2)
    # dense: 2 groups x 4 tiles x 1 x 9 = 72 MAC cycles; busiest rows 3 + 2 = 5 steps per tile -> 20
    total, mac, busy = em.format_cycles(d, SMALL, FakeCycles(total=200, mac=72), work)
    assert (total, mac, busy) == (200 - 72 + 20, 20, 5)
    total, mac, _ = em.format_cycles(d, SMALL, FakeCycles(total=200, mac=144), work)       # 2 cycles per step
    assert (total, mac) == (200 - 144 + 40, 40)
    ev = em.format_events(d, SMALL, FakeCycles(total=200, mac=72), work)
    walked = 4 * (3 + 1 + 2 + 2)                           # tiles x entries: row-cycles with work
    assert ev.mac_active == 8 * 16 and ev.mac_idle == 20 * 8 - 8 * 16
    assert ev.act_read_bits == 8 * 4 * walked              # every working row reads its own C activations
    assert ev.weight_read_bits == 8 * walked and ev.index_read_bits == 4 * walked
    assert ev.decode_adds == 2 * walked and ev.addr_adds == 2 * 4 * walked
    assert ev.weight_write_bits == 64 and ev.index_write_bits == 40
    dense = em.sps_events(em.dense_descriptor(d), SMALL, FakeCycles(total=200, mac=72))
    # DDR: the dense layer's traffic with its weights replaced by the format's 13 bytes
    dense_weights = 2 * 32                                 # 2 groups x align(1 * 9 * 2, 16)
    assert ev.ddr_read_bytes == dense.ddr_read_bytes - dense_weights + 13


def test_constants_corners_overrides_and_node_scaling():
    assert em.NODE_SCALE == pytest.approx(16 / 45 * (0.85 / 0.9) ** 2)
    k = em.constants()
    assert k["mac_pj"] == pytest.approx(0.3 * em.NODE_SCALE * em.FPGA_HARD)
    assert k["ddr_pj_per_bit"] == pytest.approx(1300 / 64)
    assert k["static_w"] == pytest.approx(0.850 * 504_000 / (1_143_450 - 103_320))
    lo, hi = em.constants("low"), em.constants("high")
    assert all(lo[key] <= k[key] <= hi[key] for key in k)
    assert em.constants(static_w=0.7)["static_w"] == 0.7
    with pytest.raises(ValueError):
        em.constants(bogus=1.0)
    with pytest.raises(ValueError):
        em.constants("typical")


def test_the_document_carries_the_constants_table():
    assert em.constants_markdown() in DOC.read_text(), \
        "docs/energy_model.md's constants table differs from energy_model.constants_markdown(): paste it again"


class _Program:
    """The parts of a Program the estimate reads."""

    def __init__(self, descs, metadata, hw=SMALL):
        self.hw, self._descs, self.metadata = hw, descs, metadata
        self.layers = [type("L", (), {"name": f"d{j}"})() for j in range(len(descs))]

    @property
    def num_layers(self):
        return len(self._descs)

    def descriptors(self):
        return list(self._descs)


def test_estimate_sums_bands_and_formats():
    d = pps_layer()
    band = Descriptor(op=Op.MAXPOOL, in_c=4, in_h=4, in_w=4, out_c=4, out_h=2, out_w=2, kh=2, kw=2, stride_h=2,
                      stride_w=2)
    meta = {"layers": [{"name": "conv", "op": "CONV", "bands": 1, "masks": d.pattern_masks, "P": 2, "K": 4,
                        "in_shape": [2, 4, 4], "out_shape": [4, 4, 4]},
                       {"name": "pool", "op": "MAXPOOL", "bands": 2}]}
    prog = _Program([d, band, band], meta)
    fake = lambda desc, hw: FakeCycles(total=1000, mac=72 if desc.op == Op.CONV and not desc.pps else 64)  # noqa
    k = unit_constants(static_w=2.0)
    est = em.estimate(prog, clock_mhz=200.0, k=k, cycles_fn=fake)
    assert [(l.name, l.bands) for l in est.layers] == [("conv", 1), ("pool", 2)]
    assert est.cycles == 3000 and est.seconds == pytest.approx(3000 / 200e6) and est.fps == pytest.approx(200e6 / 3000)
    assert est.energy_j["static"] == pytest.approx(2.0 * 3000 / 200e6)
    assert est.layers[1].events.mac_active == 2 * 4 * 4 * 4                  # two bands of 16 outputs x 4 taps
    assert est.to_dict()["modelled"] is True
    dense = em.estimate(prog, "dense", 200.0, k=k, cycles_fn=fake)
    assert dense.layers[0].events.mac_active == 4 * 16 * 2 * 9 and dense.layers[1].events == est.layers[1].events
    with pytest.raises(ValueError, match="needs the layer's weights"):
        em.estimate(prog, "csr", 200.0, k=k, cycles_fn=fake)
    work = em.formats_work(prog, {"conv": np.arange(72, dtype=float).reshape(4, 2, 3, 3) - 30})
    assert work["conv"]["csr"].nonzeros == 32                                 # density K/9 of 72 weights
    csr = em.estimate(prog, "csr", 200.0, k=k, cycles_fn=fake, work=work)
    assert csr.layers[1].events == est.layers[1].events                       # pools run the same
    r = em.compare({"sps": est, "csr": csr})
    assert r["sps"]["total_ratio"] == 1.0 and r["csr"]["total_ratio"] == pytest.approx(csr.total_j / est.total_j)
    assert "MODELLED" in em.format_estimate(est, "t") and "(modelled)" in em.format_estimate(est, "t")


def test_beside_a_measurement():
    prog = _Program([pps_layer()], {})
    fake = lambda d, hw: FakeCycles(total=1500, mac=64)   # noqa: E731
    measured = type("M", (), {"joules_per_inference": 3e-6, "latency_median_s": 3e-5})()
    b = em.beside_measurement(measured, prog, clock_mhz=150.0, cycles_fn=fake)
    est = em.estimate(prog, clock_mhz=150.0, cycles_fn=fake)
    assert b["modelled"] is True and b["seconds"] == pytest.approx(1500 / 150e6)
    assert b["measured_over_modelled_dynamic"] == pytest.approx(3e-6 / est.dynamic_j)
    assert b["measured_over_modelled_latency"] == pytest.approx(3e-5 / 1e-5)
    text = em.format_beside(b)
    assert "(modelled)" in text and "measured above idle / modelled dynamic" in text
    sim = type("M", (), {"joules_per_inference": None, "latency_median_s": 1e-3, "note": "sim backend: ..."})()
    none = em.beside_measurement(sim, prog, cycles_fn=fake)
    assert none["measured_over_modelled_dynamic"] is None and "no measured energy" in em.format_beside(none)
    assert none["measured_over_modelled_latency"] is None             # the latency of a CPU model, not the FPGA's


def test_a_compiled_network_every_format_and_the_traffic_report(zoo_programs):
    """mnist_cnn compiled PPS(8,4): the estimate's DDR bytes are the traffic report's, and every other format
    runs from the BN-folded float weights the compiler lowers (names match the program's layers)."""
    pytest.importorskip("torch")
    from sps_pynq.analysis.traffic import network_traffic, totals
    from sps_pynq.compiler import import_and_lower
    program = zoo_programs.compile("mnist_cnn", pps="8x4", first_layer_dense=True)
    fake = lambda d, hw: FakeCycles(total=5000, mac=100)       # noqa: E731
    sps = em.estimate(program, cycles_fn=fake)
    ev = sps.events
    assert ev.ddr_read_bytes + ev.ddr_write_bytes == totals(network_traffic(program))["moved"]
    _, floats, _ = import_and_lower("mnist_cnn", pps=None, first_layer_dense=True)
    work = em.formats_work(program, {layer.name: layer.weights for layer in floats if layer.weights is not None})
    assert set(work) == set(em.pruned_layers(program)) and len(work) >= 2
    for name, (O, I, P, K) in em.pruned_layers(program).items():
        assert work[name]["csr"].nonzeros <= round(O * I * K)          # magnitude-pruned to K of 9 (int8 zeros off)
        assert work[name]["pattern_id"].entries.tolist() == [I * K] * O
    for f in em.FORMATS:
        est = em.estimate(program, f, cycles_fn=fake, work=work)
        assert [l.name for l in est.layers] == [l.name for l in sps.layers]
