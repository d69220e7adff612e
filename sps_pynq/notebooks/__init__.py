"""The notebooks of sps-pynq, registered under pynq's `pynq.notebooks` entry point: on a PYNQ board,
`pynq get-notebooks sps_pynq` copies them (with the package's overlays) into ./pynq-notebooks.

    sps_digits.ipynb   classify real MNIST digits with the shipped demo model: images, predictions, throughput,
                       per-layer cycles and utilization from stats()
    sps_energy.ipynb   SPS vs dense: J/inference from the board's rails, the power trace with idle and active marked

Both run on the board backend (a ZCU104, or the virtual ZCU104: `sps-pynq virtual-board`); CI executes them
headless against the virtual board (host_tests/test_notebooks.py). They are stored without outputs.
"""
