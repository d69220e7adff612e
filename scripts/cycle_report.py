#!/usr/bin/env python3
"""Cycle report: VGG16's 13 conv layers through the RTL (Verilator, `rtl` backend), PPS(8,4) and dense.

    python scripts/cycle_report.py                      # zcu104 (16x16), maps 8x8, full channel counts
    python scripts/cycle_report.py --size 14 --layers conv4_1,conv5_3
    python scripts/cycle_report.py --hw small --size 6 --channel-div 8     # quick look at the CI array
    python scripts/cycle_report.py --network resnet18_imagenet             # whole network, cycle model only
    python scripts/cycle_report.py --network resnet18_imagenet --input-shape 3,64,64 --hw small --rtl
                                                                           # ... and the RTL beside it

VGG16 mode (the default) runs the RTL; every row also shows the cycle model (sps_pynq/hw/cycles.py) and its error
against the RTL. Network mode compiles a zoo network (or loads a .spsmodel) and prints per layer, bands merged:
modelled cycles, ideal, utilization, MAC efficiency, DDR bytes, and the frames per second at --clock with the
board's DDR latency *assumed* (hw/cycles.ZCU104_DDR); with --rtl it also runs the program on the `rtl` backend,
prints the measured cycles and the model's error per layer, and checks the RTL's output against `sim`'s (unless
--no-check).

For every layer it builds a one-layer program (random int8 input, random weights; in PPS mode projected onto a
PPS(8,4) table with sps_pynq.pps.project), runs it on the RTL, and reads the core's own counters. It prints per
layer and mode:

  cycles      the layer's cycle count from the core's per-layer statistics record (START to layer done)
  ideal       I*K cycles per tile, summed over tiles and row groups: n_groups * ceil(H_out*W_out / C) * I * K,
              where n_groups = sum over residue classes of ceil(filters in class / R) (dense: P = 1, K = 9)
  util        ideal / cycles: how close the array gets to one useful (i, k) step per cycle
  idle rows   fraction of row slots holding no filter (a class with fewer than R filters left); these slots are
              counted inside `ideal`, so they lower the MAC efficiency but not `util`
  mac%        MAC-active cycles / cycles, from the core's counters
  groups      row groups (R filters of one residue class each); tiles: output tiles of C pixels per group
  speedup     dense cycles / PPS cycles of the same layer on the same array
  model, err  the cycle model's cycles for the layer (testbench memory) and its error against the RTL

Scaling (simulation costs tens of microseconds per clock): channel counts are VGG16's own (they set the row
groups, idle rows and the I*K work per tile) unless --channel-div divides them; the feature maps are --size x
--size instead of 224..14 (VGG16's conv1 input map alone would not fit the 128 KiB activation buffer). Fewer
tiles per row group means each row group's weight fetch is spread over fewer tiles, so utilization measured on
small maps is, if anything, pessimistic. Each output is also checked bit-exact against the `sim` backend.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sps_pynq.hw import cycles as cycle_model  # noqa: E402
from sps_pynq.hw import layout  # noqa: E402
from sps_pynq.hw.config import HwConfig, get_config  # noqa: E402
from sps_pynq.hw.descriptor import DESC_BYTES, STATS_RECORD_BYTES, Descriptor, Op, align, pack_program  # noqa: E402
from sps_pynq.program import LayerInfo, Program, TensorInfo  # noqa: E402

# VGG16's 13 conv layers: (name, input channels, output channels, input map side at 224x224).
VGG16_CONVS = [
    ("conv1_1", 3, 64, 224), ("conv1_2", 64, 64, 224),
    ("conv2_1", 64, 128, 112), ("conv2_2", 128, 128, 112),
    ("conv3_1", 128, 256, 56), ("conv3_2", 256, 256, 56), ("conv3_3", 256, 256, 56),
    ("conv4_1", 256, 512, 28), ("conv4_2", 512, 512, 28), ("conv4_3", 512, 512, 28),
    ("conv5_1", 512, 512, 14), ("conv5_2", 512, 512, 14), ("conv5_3", 512, 512, 14),
]
PPS_P, PPS_K = 8, 4
GOAL_UTIL, GOAL_SPEEDUP = 0.90, 2.0


@dataclass
class LayerShape:
    name: str
    in_c: int
    out_c: int
    side: int          # input and output map side (3x3, stride 1, pad 1)


def scaled_layers(size: int, channel_div: int, names: Optional[List[str]] = None) -> List[LayerShape]:
    chosen = []
    for name, i, o, side in VGG16_CONVS:
        if names and name not in names:
            continue
        chosen.append(LayerShape(name, max(1, i // channel_div), max(1, o // channel_div), min(size, side)))
    if names:
        unknown = set(names) - {c[0] for c in VGG16_CONVS}
        if unknown:
            raise SystemExit(f"unknown layer(s) {', '.join(sorted(unknown))}; VGG16 has "
                             f"{', '.join(c[0] for c in VGG16_CONVS)}")
    return chosen


def share_shift(shape: LayerShape, hw: HwConfig, pps: bool, share: bool) -> Optional[int]:
    """The slot_shift with which the PPS layer's classes share row groups (as compiler/fill_rows.py would where a
    group holds two classes or more and the rules allow it), else None."""
    if not (pps and share):
        return None
    side = shape.side
    d = Descriptor(op=Op.CONV, in_c=shape.in_c, in_h=side, in_w=side, out_c=shape.out_c, out_h=side, out_w=side,
                   kh=3, kw=3, pad_top=1, pad_left=1, pps=True, patterns=PPS_P, nnz=PPS_K)
    return layout.share_slot_shift(d, hw)


def groups_and_tiles(shape: LayerShape, hw: HwConfig, pps: bool, slot_shift: Optional[int] = None) -> Tuple[int, int]:
    P = PPS_P if pps else 1
    return (len(layout.row_groups(shape.out_c, P, hw.rows, slot_shift)),
            math.ceil(shape.side * shape.side / hw.cols))


def ideal_cycles(shape: LayerShape, hw: HwConfig, pps: bool, slot_shift: Optional[int] = None) -> Tuple[int, float]:
    """(ideal cycles, idle-row fraction): I*K per tile, summed over tiles and row groups."""
    P, K = (PPS_P, PPS_K) if pps else (1, 9)
    ideal = layout.ideal_conv_cycles(shape.out_c, shape.in_c, K, P, shape.side * shape.side, hw.rows, hw.cols,
                                     slot_shift)
    groups, _ = groups_and_tiles(shape, hw, pps, slot_shift)
    return ideal, 1.0 - shape.out_c / (groups * hw.rows)


def build_program(shape: LayerShape, hw: HwConfig, pps: bool, rng: np.random.Generator,
                  slot_shift: Optional[int] = None) -> Program:
    """A one-layer program: descriptor at 0, weights, params, input, output, stats record."""
    w = rng.integers(-127, 128, size=(shape.out_c, shape.in_c, 3, 3)).astype(np.int8)
    masks: List[int] = []
    if pps:
        from sps_pynq.pps import project
        proj = project(w, PPS_P, PPS_K, name=shape.name)
        w, masks = proj.weights.astype(np.int8), list(proj.masks)
    K = PPS_K if pps else 9
    acc_std = 74.0 * 74.0 * math.sqrt(shape.in_c * K)
    factor = 50.0 / acc_std
    shift = int(min(max(30 - math.floor(math.log2(factor)), 0), 63))
    mult = np.full(shape.out_c, int(round(factor * 2**shift)), dtype=np.int64)
    bias = rng.integers(-int(acc_std), int(acc_std) + 1, size=shape.out_c)
    wdata = layout.pack_weights(w, hw.rows, masks or None, slot_shift)
    pdata = layout.pack_params(bias, mult, np.full(shape.out_c, shift), hw.rows, PPS_P if pps else 1, slot_shift)

    hw_side = shape.side
    in_bytes = shape.in_c * hw_side * hw_side
    out_bytes = shape.out_c * hw_side * hw_side
    weight_off = align(DESC_BYTES)
    param_off = align(weight_off + len(wdata))
    in_off = align(param_off + len(pdata))
    out_off = align(in_off + in_bytes)
    stats_off = align(out_off + out_bytes)
    arena_size = align(stats_off + STATS_RECORD_BYTES)

    d = Descriptor(op=Op.CONV, in_offset=in_off, in_c=shape.in_c, in_h=hw_side, in_w=hw_side,
                   out_offset=out_off, out_c=shape.out_c, out_h=hw_side, out_w=hw_side, kh=3, kw=3,
                   stride_h=1, stride_w=1, pad_top=1, pad_left=1, pad_bottom=1, pad_right=1, relu=True,
                   pps=pps, patterns=PPS_P if pps else 1, nnz=K, weight_offset=weight_off, param_offset=param_off,
                   pattern_masks=masks, share=slot_shift is not None, slot_shift=slot_shift or 0)
    image = bytearray(in_off)
    image[0:DESC_BYTES] = pack_program([d])
    image[weight_off:weight_off + len(wdata)] = wdata
    image[param_off:param_off + len(pdata)] = pdata
    mode = f"pps{PPS_P}_{PPS_K}" if pps else "dense"
    return Program(hw=hw, image=bytes(image), arena_size=arena_size, prog_offset=0,
                   layers=[LayerInfo(f"{shape.name}_{mode}", [], 1.0)],
                   inputs=[TensorInfo("input", (shape.in_c, hw_side, hw_side), 1.0, in_off)],
                   outputs=[TensorInfo("output", (shape.out_c, hw_side, hw_side), 1.0, out_off)],
                   stats_offset=stats_off, metadata={"source": "scripts/cycle_report.py", "layer": shape.name})


@dataclass
class Measured:
    cycles: int
    mac_cycles: int
    stall_cycles: int
    ideal: int
    idle_rows: float
    exact: Optional[bool]
    seconds: float
    model: int = 0

    @property
    def err(self) -> float:
        return self.model / self.cycles - 1 if self.cycles else 0.0

    @property
    def util(self) -> float:
        return self.ideal / self.cycles if self.cycles else 0.0


@contextlib.contextmanager
def output_to(log_path: Path):
    """Send this process's stdout/stderr (file descriptors, so Verilator's and cocotb's too) to a log file."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def run_layer(program: Program, x: np.ndarray, rtl, sim, log_path: Path) -> Tuple[dict, Optional[bool], float]:
    t0 = time.perf_counter()
    rtl.load(program)
    rtl.write(program.inputs[0].offset, x)
    with output_to(log_path):
        rtl.run()
    out = program.outputs[0]
    got = rtl.read(out.offset, out.nbytes)
    stats = rtl.stats()
    seconds = time.perf_counter() - t0
    exact = None
    if sim is not None:
        sim.load(program)
        sim.write(program.inputs[0].offset, x)
        sim.run()
        exact = bool(np.array_equal(got, sim.read(out.offset, out.nbytes)))
    layer = stats["layers"][0] if stats.get("layers") else {"cycles": stats["cycles"],
                                                             "mac_cycles": stats["mac_cycles"],
                                                             "stall_cycles": stats["stall_cycles"]}
    return layer, exact, seconds


def format_row(name: str, mode: str, m: Measured, groups: int, tiles: int, speedup: str = "") -> str:
    exact = {None: "-", True: "yes", False: "NO"}[m.exact]
    mac = m.mac_cycles / m.cycles if m.cycles else 0.0
    return (f"{name:<8} {mode:<6} {groups:>6} {tiles:>5} {m.cycles:>10} {m.ideal:>10} {m.util:>6.1%} "
            f"{m.idle_rows:>9.1%} {mac:>6.1%} {m.stall_cycles:>8} {exact:>5} {speedup:>8} {m.model:>10} {m.err:>+7.2%}")


HEADER = (f"{'layer':<8} {'mode':<6} {'groups':>6} {'tiles':>5} {'cycles':>10} {'ideal':>10} {'util':>6} "
          f"{'idle rows':>9} {'mac%':>6} {'stalls':>8} {'exact':>5} {'speedup':>8} {'model':>10} {'err':>7}")


def _base_name(name: str) -> str:
    """A band's layer name without its ' [band j/n]' suffix, and of an ONNX node path only its last three parts
    (/layers/layers.0/layers.0.0/conv1/Conv -> layers.0.0/conv1/Conv)."""
    return "/".join(name.split("[band")[0].rstrip().strip("/").split("/")[-3:])


def load_network(args) -> Program:
    if args.network.endswith(".spsmodel"):
        from sps_pynq import model_file
        return model_file.load(args.network)
    import warnings
    from sps_pynq.compiler import compile_model
    from sps_pynq import zoo
    shape = tuple(int(v) for v in args.input_shape.split(",")) if args.input_shape else zoo.input_shape(args.network)
    calib = np.random.default_rng(0).standard_normal((8,) + shape).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compile_model(args.network, hw=args.hw or "zcu104", pps=None if args.dense else "8x4",
                             first_layer_dense=True, fill_rows=args.fill_rows, keep_outputs=args.keep_outputs,
                             calib=calib, input_shape=shape)


def network_report(args) -> int:
    """Whole-network mode: the cycle model per layer (bands merged), totals and frames per second."""
    from sps_pynq.hw.traffic import bytes_read, layer_traffic
    program = load_network(args)
    hw = program.hw
    descs = program.descriptors()
    bench = [cycle_model.layer_cycles(d, hw) for d in descs]
    board = [cycle_model.layer_cycles(d, hw, cycle_model.ZCU104_DDR) for d in descs]
    measured = None
    if args.rtl:
        from sps_pynq.backends.rtl import RtlBackend
        rtl = RtlBackend(hw)
        rtl.load(program)
        x = np.random.default_rng(args.seed).integers(-128, 128, program.inputs[0].nbytes, dtype=np.int64)
        rtl.write(program.inputs[0].offset, x.astype(np.int8))
        log_path = Path(args.log)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with output_to(log_path):
            rtl.run()
        rtl_seconds = time.perf_counter() - t0
        measured = [int(layer["cycles"]) for layer in rtl.stats()["layers"]]
        if not args.no_check:             # the RTL's outputs against the C golden model's on the same input
            from sps_pynq.backends.sim import SimBackend
            sim = SimBackend(hw)
            sim.load(program)
            sim.write(program.inputs[0].offset, x.astype(np.int8))
            sim.run()
            for t in program.outputs:
                if not np.array_equal(rtl.read(t.offset, t.nbytes), sim.read(t.offset, t.nbytes)):
                    print(f"error: output {t.name}: the RTL differs from sim", file=sys.stderr)
                    return 1
            print(f"RTL outputs equal sim's bit for bit ({len(program.outputs)} output(s))")

    needed = program.layer_macs(descs)          # nonzero MACs (the model's K where --fill-rows merged classes)
    rows: dict = {}
    for j, (d, mb, mo) in enumerate(zip(descs, bench, board)):
        name = _base_name(program.layers[j].name)
        r = rows.setdefault(name, dict(op=d.op.name.lower(), kernel=f"{d.kh}x{d.kw}/{d.stride_h}", bands=0,
                                       groups=mb.groups, cycles=0, board=0, ideal=0, macs=0, ddr=0, rtl=0,
                                       rows_read=0, map_rows=d.in_map_h or d.in_h,
                                       pps=d.op == Op.CONV and d.pps))
        r["bands"] += 1
        r["rows_read"] += d.in_h if d.in_h < r["map_rows"] else 0     # row bands (channel bands re-read nothing)
        r["cycles"] += mb.total
        r["board"] += mo.total
        r["ideal"] += cycle_model.ideal_cycles(d, hw)
        r["macs"] += needed[j]
        t = layer_traffic(d, hw)
        r["ddr"] += bytes_read(t) + t["act_written"]
        if measured:
            r["rtl"] += measured[j]
    slots = hw.rows * hw.cols
    print(f"{args.network}: {len(rows)} layers, {len(descs)} descriptors, {hw.describe()}")
    print("cycles are MODELLED (sps_pynq/hw/cycles.py): 'cycles' with the rtl testbench's memory, 'board' with the "
          f"board's DDR read latency assumed ({cycle_model.ZCU104_DDR.name})")
    head = (f"{'layer':<32} {'op':<7} {'kernel':<6} {'bands':>5} {'groups':>6} {'cycles':>10} {'board':>10} "
            f"{'ideal':>10} {'util':>6} {'mac eff':>7} {'DDR KB':>8} {'halo':>5}")
    if measured:
        head += f" {'rtl':>10} {'err':>7}"
    print(head)
    for name, r in rows.items():
        util = r["ideal"] / r["cycles"] if r["cycles"] and r["ideal"] else 0.0
        eff = r["macs"] / (r["cycles"] * slots) if r["cycles"] else 0.0
        line = (f"{name[:32]:<32} {r['op']:<7} {r['kernel']:<6} {r['bands']:>5} {r['groups']:>6} {r['cycles']:>10} "
                f"{r['board']:>10} {r['ideal']:>10} {util:>6.1%} {eff:>7.1%} {r['ddr'] / 1e3:>8.1f} "
                f"{max(0, r['rows_read'] - r['map_rows']) if r['rows_read'] else 0:>5}")
        if measured:
            line += f" {r['rtl']:>10} {r['cycles'] / r['rtl'] - 1:>+7.2%}"
        print(line)
    total, total_board = sum(m.total for m in bench), sum(m.total for m in board)
    macs = sum(needed)
    conv3 = [r for r in rows.values() if r["op"] == "conv" and r["kernel"].startswith("3x3")]
    conv3_s1 = [r for r in conv3 if r["kernel"] == "3x3/1"]
    print()
    print(f"total (modelled): {total:,} cycles with the testbench memory, {total_board:,} with the assumed board DDR; "
          f"at {args.clock:g} MHz: {cycle_model.fps(total_board, args.clock):,.1f} frames/s "
          f"({cycle_model.seconds(total_board, args.clock) * 1e3:.2f} ms per inference)")
    print(f"MAC efficiency (nonzero MACs / (cycles x {hw.rows} x {hw.cols})): "
          f"{macs / (total_board * slots):.1%} of the whole network (board DDR)")
    if conv3:
        c3, i3 = sum(r["board"] for r in conv3), sum(r["ideal"] for r in conv3)
        worst = min(conv3, key=lambda r: r["ideal"] / r["board"])
        print(f"3x3 convolutions: utilization (ideal / cycles) {i3 / c3:.1%} over {len(conv3)} layers "
              f"(lowest {worst['ideal'] / worst['board']:.1%}); DDR bytes per inference "
              f"{sum(r['ddr'] for r in rows.values()) / 1e6:.2f} MB")
        if conv3_s1 and len(conv3_s1) < len(conv3):
            c1, i1 = sum(r["board"] for r in conv3_s1), sum(r["ideal"] for r in conv3_s1)
            print(f"  stride 1: {i1 / c1:.1%} over {len(conv3_s1)} layers (lowest "
                  f"{min(r['ideal'] / r['board'] for r in conv3_s1):.1%}); stride 2: "
                  f"{(i3 - i1) / (c3 - c1):.1%} over {len(conv3) - len(conv3_s1)}")
    if measured:
        errs = [m.total / c - 1 for m, c in zip(bench, measured)]
        big = [e for e, c in zip(errs, measured) if c >= 1000]
        print(f"cycle model against the RTL: {len(errs)} descriptors, max |error| {max(map(abs, errs)):.2%} "
              f"({max(map(abs, big)) if big else 0:.2%} over the {len(big)} of >= 1,000 cycles); "
              f"whole program {total / sum(measured) - 1:+.2%}; RTL simulation {rtl_seconds:.0f} s")
        convs = [r for r in rows.values() if r["op"] == "conv"]
        conv_eff = sum(r["macs"] for r in convs) / (sum(r["rtl"] for r in convs) * slots)
        pps = [r for r in convs if r["pps"]]
        pps_eff = sum(r["macs"] for r in pps) / (sum(r["rtl"] for r in pps) * slots) if pps else 0.0
        pps_text = f", PPS convolutions {pps_eff:.1%}" if pps else ""
        print(f"RTL (testbench memory): {sum(measured):,} cycles = {cycle_model.fps(sum(measured), args.clock):,.1f} "
              f"frames/s at {args.clock:g} MHz; MAC efficiency {macs / (sum(measured) * slots):.1%} of the whole "
              f"network, {conv_eff:.1%} over its convolutions{pps_text}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hw", default=None, help="hardware configuration (default zcu104, 16x16)")
    p.add_argument("--size", type=int, default=8, help="feature map side (default 8; VGG16's own is 224..14)")
    p.add_argument("--channel-div", type=int, default=1, help="divide VGG16's channel counts (default 1: none)")
    p.add_argument("--layers", default="", help="comma-separated subset, e.g. conv1_2,conv4_1")
    p.add_argument("--no-check", action="store_true", help="skip the bit-exact comparison with `sim`")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log", default=str(REPO / "build" / "cycle_report.log"),
                   help="where the simulator's own output goes (default build/cycle_report.log)")
    p.add_argument("--network", default=None,
                   help="a zoo network name or a .spsmodel file: whole-network mode (cycle model per layer)")
    p.add_argument("--input-shape", default=None, help="network mode: C,H,W instead of the zoo's own")
    p.add_argument("--dense", action="store_true", help="network mode: compile without PPS (all layers dense)")
    p.add_argument("--fill-rows", action=argparse.BooleanOptionalAction, default=True,
                   help="compile with fill_rows (merged or shared residue classes where faster; the default; "
                        "layer mode: PPS layers share classes where the rules allow); --no-fill-rows: the encoding "
                        "exactly as pruned")
    p.add_argument("--keep-outputs", action=argparse.BooleanOptionalAction, default=True,
                   help="network mode: compile with keep_outputs (layers chained through the activation buffer "
                        "where the rules allow; the default); --no-keep-outputs: every layer loads its input")
    p.add_argument("--clock", type=float, default=150.0, help="network mode: core clock in MHz (default 150)")
    p.add_argument("--rtl", action="store_true", help="network mode: also run the program on the RTL")
    args = p.parse_args(argv)
    if args.network:
        return network_report(args)

    from sps_pynq.backends.rtl import RtlBackend
    from sps_pynq.errors import SpsError
    hw = get_config(args.hw)
    names = [n.strip() for n in args.layers.split(",") if n.strip()]
    shapes = scaled_layers(args.size, args.channel_div, names)
    rng = np.random.default_rng(args.seed)
    sim = None
    if not args.no_check:
        from sps_pynq.backends.sim import SimBackend
        sim = SimBackend(hw)
    rtl = RtlBackend(hw)

    log_path = Path(args.log)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")
    print(f"SPS core RTL (Verilator), {hw.describe()}")
    print("layers (I>O, map): " + ", ".join(f"{sh.name} {sh.in_c}>{sh.out_c} {sh.side}x{sh.side}" for sh in shapes))
    print(f"VGG16 conv layers, 3x3 stride 1 pad 1, maps {args.size}x{args.size} (capped at VGG16's own side), "
          f"channels {'as VGG16' if args.channel_div == 1 else f'VGG16 / {args.channel_div}'}; "
          f"PPS({PPS_P},{PPS_K}) vs dense (K=9) on the same array")
    print(HEADER)
    totals = {"pps": [0, 0], "dense": [0, 0]}      # cycles, ideal
    macs = {"pps": 0, "dense": 0}                   # nonzero multiply-accumulates
    all_exact = True
    errors: List[float] = []
    t_start = time.perf_counter()
    for shape in shapes:
        x = rng.integers(0, 128, size=shape.in_c * shape.side * shape.side, dtype=np.int64).astype(np.int8)
        rows = {}
        shift = share_shift(shape, hw, True, args.fill_rows)
        for mode in ("pps", "dense"):
            prog = build_program(shape, hw, mode == "pps", rng, shift if mode == "pps" else None)
            try:
                layer, exact, seconds = run_layer(prog, x, rtl, sim, log_path)
            except SpsError as e:
                print(f"{shape.name:<8} {mode:<6} failed: {e} (simulator output in {log_path})", flush=True)
                return 2
            ideal, idle = ideal_cycles(shape, hw, mode == "pps", shift if mode == "pps" else None)
            model = cycle_model.layer_cycles(prog.descriptors()[0], hw).total
            rows[mode] = Measured(int(layer["cycles"]), int(layer["mac_cycles"]), int(layer["stall_cycles"]),
                                  ideal, idle, exact, seconds, model)
            errors.append(rows[mode].err)
            totals[mode][0] += rows[mode].cycles
            totals[mode][1] += ideal
            macs[mode] += shape.out_c * shape.side * shape.side * shape.in_c * (PPS_K if mode == "pps" else 9)
            all_exact &= exact is not False
        speed = rows["dense"].cycles / rows["pps"].cycles if rows["pps"].cycles else 0.0
        print(format_row(shape.name, "pps" if shift is None else "pps-sh", rows["pps"],
                         *groups_and_tiles(shape, hw, True, shift), f"{speed:.2f}x"), flush=True)
        print(format_row(shape.name, "dense", rows["dense"], *groups_and_tiles(shape, hw, False)), flush=True)

    pps_c, pps_i = totals["pps"]
    den_c, den_i = totals["dense"]
    util_pps = pps_i / pps_c if pps_c else 0.0
    util_den = den_i / den_c if den_c else 0.0
    speedup = den_c / pps_c if pps_c else 0.0
    ideal_speedup = den_i / pps_i if pps_i else 0.0
    print()
    print(f"conv stack ({len(shapes)} layers): PPS {pps_c} cycles (ideal {pps_i}, utilization {util_pps:.1%}), "
          f"dense {den_c} cycles (ideal {den_i}, utilization {util_den:.1%})")
    slots = hw.rows * hw.cols
    print(f"MAC efficiency (nonzero MACs / (cycles x {hw.rows} x {hw.cols})): PPS {macs['pps'] / (pps_c * slots):.1%}, "
          f"dense {macs['dense'] / (den_c * slots):.1%}" if pps_c and den_c else "MAC efficiency: -")
    print(f"PPS({PPS_P},{PPS_K}) over dense: {speedup:.2f}x measured, {ideal_speedup:.2f}x ideal on this array "
          f"(9/{PPS_K} = {9 / PPS_K:.2f}x without idle rows)")
    print(f"goals: utilization >= {GOAL_UTIL:.0%} of ideal: PPS {'met' if util_pps >= GOAL_UTIL else 'MISSED'}, "
          f"dense {'met' if util_den >= GOAL_UTIL else 'MISSED'}; speedup >= {GOAL_SPEEDUP:.1f}x: "
          f"{'met' if speedup >= GOAL_SPEEDUP else 'MISSED'}")
    print(f"cycle model against the RTL: max |error| {max(abs(e) for e in errors):.2%} over {len(errors)} layers "
          f"(testbench memory; sps_pynq/hw/cycles.py)")
    print(f"outputs bit-exact with sim: {'all' if all_exact else 'NO (see rows marked NO)'}"
          f"{' (not checked)' if sim is None else ''}; simulation wall time {time.perf_counter() - t_start:.0f} s")
    return 0 if all_exact else 1


if __name__ == "__main__":
    sys.exit(main())
