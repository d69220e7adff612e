"""MODELLED joules per inference of SPS, dense and the other sparse formats on the same 16 x 16 array (issue 14,
items 2-4): VGG16 and ResNet-18 at CIFAR size (zoo names vgg16, resnet18) and at ImageNet size (vgg16_imagenet,
resnet18_imagenet, which run in bands through DDR), with each format's ratio to SPS beside the paper's 4.49x, and a
stacked-bar plot of the components.

    python scripts/energy_report.py                                   # all four nets, table on stdout
    python scripts/energy_report.py --nets vgg16 --plot docs/energy_breakdown.png --markdown /tmp/e.md

Method (docs/energy_model.md): each zoo network (seeded weights: only shapes and sparsity matter here) is compiled
with PPS(8,4), first conv dense, for the zcu104 core; its cycles come from the cycle model (sps_pynq/hw/cycles.py),
its events from the descriptors. "dense" runs every PPS conv in dense mode on the same core. The other formats
prune the same BN-folded float weights unstructured by magnitude to each PPS layer's density (4/9), quantize to int8
as the compiler does, and run each layer on the same array with every row walking its own filter's entries
(energy_model.format_events). Every number printed is a model, not a measurement.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sps_pynq.analysis import energy_model as em  # noqa: E402

NETS = ("vgg16", "resnet18", "vgg16_imagenet", "resnet18_imagenet")
PAPER_ENERGY_RATIO = 4.49          # the paper: energy efficiency of SPS against other sparse formats
ORDER = ("sps", "dense") + em.FORMATS
TITLES = {"sps": "SPS (PPS 8x4)", "dense": "dense", "csr": "CSR", "coo": "COO", "bitmap": "bitmap",
          "relative": "relative 4-bit", "pattern_id": "pattern id"}


def memo_cycles():
    """The cycle model, memoized on the packed descriptor (the formats ask for the same dense layers again)."""
    base = em._default_cycles()
    cache = {}

    def cycles(d, hw):
        key = d.pack()
        if key not in cache:
            cache[key] = base(d, hw)
        return cache[key]
    return cycles


def raw_weights(name: str, program) -> dict:
    """The zoo model's own conv weights (before BatchNorm folding) for each PPS layer of `program`: the next
    unused 3x3 conv of the same shape in module order."""
    from sps_pynq.analysis.storage import layers_from_zoo
    convs = [layer.weights for layer in layers_from_zoo(name) if layer.weights.ndim == 4]
    used, out = set(), {}
    for lname, (O, I, _, _) in em.pruned_layers(program).items():
        j = next(j for j, w in enumerate(convs) if j not in used and w.shape == (O, I, 3, 3))
        used.add(j)
        out[lname] = convs[j]
    return out


def run_net(name: str, clock: float, n_calib: int, index_width: str, prune_on: str) -> dict:
    from sps_pynq import zoo
    from sps_pynq.compiler import compile_model, import_and_lower
    t0 = time.perf_counter()
    shape = zoo.input_shape(name)
    calib = np.random.default_rng(0).standard_normal((n_calib,) + tuple(shape)).astype(np.float32)
    program = compile_model(name, pps="8x4", first_layer_dense=True, calib=calib)
    if prune_on == "folded":
        _, floats, _ = import_and_lower(name, pps=None, first_layer_dense=True)
        weights = {layer.name: layer.weights for layer in floats if layer.weights is not None}
    else:
        weights = raw_weights(name, program)
    work = em.formats_work(program, weights, index_width)
    cycles = memo_cycles()
    out = {"net": name, "input": list(shape), "descriptors": program.num_layers, "prune_on": prune_on,
           "clock_mhz": clock,
           "pps_layers": len(work), "estimates": {}, "corners": {}}
    for corner in em.CORNERS:
        ests = {f: em.estimate(program, f, clock, corner, cycles_fn=cycles, work=work) for f in ORDER}
        out["corners"][corner] = em.compare(ests)
        if corner == "nominal":
            out["estimates"] = {f: e.to_dict() for f, e in ests.items()}
            for e in out["estimates"].values():
                e.pop("layers")
    # load imbalance: the busiest row of each group of R filters against the mean row, over the pruned layers
    R = program.hw.rows
    for f in em.FORMATS:
        busiest = mean = 0.0
        for layer in work.values():
            ent = layer[f].entries
            for g in range(0, len(ent), R):
                busiest += ent[g:g + R].max()
                mean += ent[g:g + R].mean()
        out.setdefault("imbalance", {})[f] = busiest / mean if mean else 1.0
    out["seconds"] = time.perf_counter() - t0
    return out


def ratio_text(c: dict, f: str) -> str:
    lo, nom, hi = (c[k][f]["total_ratio"] for k in ("low", "nominal", "high"))
    return f"{nom:.2f}x (low {lo:.2f}, high {hi:.2f})"


def markdown(results, clock: float) -> str:
    lines = [f"| net | format | modelled after | cycles (modelled) | ms at {clock:g} MHz (modelled) | "
             "DDR MB (modelled) | MAC | on-chip | DDR | control | static | mJ/inference (modelled) | "
             "vs SPS, total (all-low / all-high constants) | vs SPS, dynamic | paper |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        for f in ORDER:
            e = r["estimates"][f]
            c = r["corners"]
            after = {"sps": "this core", "dense": "this core, dense mode"}.get(f) or \
                em.FORMAT_DESIGNS[f].split(":")[0]
            mj = {k: v * 1e3 for k, v in e["energy_j"].items()}
            paper = "" if f in ("sps", "dense") else f"{PAPER_ENERGY_RATIO}x"
            lines.append(
                f"| {r['net']} | {TITLES[f]} | {after} | {e['cycles']:,} | {e['seconds'] * 1e3:,.2f} | "
                f"{(e['ddr_read_bytes'] + e['ddr_write_bytes']) / 1e6:,.2f} | "
                + " | ".join(f"{mj[k]:,.3f}" for k in em.COMPONENTS)
                + f" | {e['total_j'] * 1e3:,.3f} | {'1' if f == 'sps' else ratio_text(c, f)} | "
                f"{c['nominal'][f]['dynamic_ratio']:.2f}x | {paper} |")
    return "\n".join(lines)


def summary(results) -> str:
    lines = []
    for r in results:
        c = r["corners"]["nominal"]
        others = [c[f]["total_ratio"] for f in em.FORMATS]
        dyn = [c[f]["dynamic_ratio"] for f in em.FORMATS]
        geo = float(np.exp(np.mean(np.log(others))))
        lines.append(f"{r['net']}: other formats over SPS (modelled, nominal): total {min(others):.2f}x .. "
                     f"{max(others):.2f}x (geometric mean {geo:.2f}x), dynamic {min(dyn):.2f}x .. {max(dyn):.2f}x; "
                     f"dense {c['dense']['total_ratio']:.2f}x | paper {PAPER_ENERGY_RATIO}x; busiest row / mean "
                     + ", ".join(f"{f} {v:.3f}" for f, v in r["imbalance"].items())
                     + f"; pruned on {r['prune_on']} weights; {r['descriptors']} descriptors, {r['pps_layers']} PPS "
                     f"layers, {r['seconds']:.0f} s")
    return "\n".join(lines)


def plot(results, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cols = min(2, len(results))
    rows = -(-len(results) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows + 0.8), squeeze=False)
    colors = {"mac": "#4c72b0", "onchip": "#55a868", "ddr": "#c44e52", "control": "#8172b2", "static": "#937860"}
    for ax in axes.flat[len(results):]:
        ax.set_visible(False)
    for ax, r in zip(axes.flat, results):
        base = np.zeros(len(ORDER))
        for comp in em.COMPONENTS:
            vals = np.array([r["estimates"][f]["energy_j"][comp] * 1e3 for f in ORDER])
            ax.bar(range(len(ORDER)), vals, bottom=base, color=colors[comp], label=em.COMPONENT_TITLES[comp])
            base += vals
        ax.set_xticks(range(len(ORDER)))
        ax.set_xticklabels([TITLES[f].split(" (")[0] for f in ORDER], rotation=45, ha="right", fontsize=8)
        ax.set_title(r["net"], fontsize=10)
        ax.set_ylabel("mJ per inference (modelled)", fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles[::-1], labels[::-1], loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle("Modelled energy per inference on the 16x16 SPS array at "
                 f"{results[0]['clock_mhz']:g} MHz (docs/energy_model.md): a model, not a measurement", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nets", nargs="+", default=list(NETS), choices=NETS)
    p.add_argument("--clock", type=float, default=em.DEFAULT_CLOCK_MHZ, help="core clock in MHz (default 150)")
    p.add_argument("--calib", type=int, default=2, help="seeded calibration inputs (scales only; default 2)")
    p.add_argument("--index-width", choices=["minimal", "fixed"], default="minimal")
    p.add_argument("--prune-on", choices=["folded", "raw"], default="folded",
                   help="magnitude-prune the BN-folded weights the compiler quantizes and PPS projects (default), "
                        "or the zoo model's conv weights before folding")
    p.add_argument("--plot", help="write the stacked-bar plot (PNG) here")
    p.add_argument("--markdown", help="write the markdown table here")
    p.add_argument("--json", help="write every number here")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    results = []
    for name in args.nets:
        results.append(run_net(name, args.clock, args.calib, args.index_width, args.prune_on))
        print(summary(results[-1:]), flush=True)
    table = markdown(results, args.clock)
    print()
    print(f"MODELLED energy per inference, cycle model {em.cycle_model_name()}, clock {args.clock:g} MHz; "
          f"components in mJ (modelled)")
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.plot:
        plot(results, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
