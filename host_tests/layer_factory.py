"""Random valid layers and small layer programs on an arena, for bit-exactness tests of numpy / C / RTL.

The generators live in the package, `sps_pynq.testing.layers` (`sps-pynq selftest` runs them on a board after
installation); this module re-exports them so the tests and the cocotb testbenches (hw_src/tb) keep
`import layer_factory`:

    arena, desc = random_layer(rng, hw, op="pps", in_c=5)          # one layer, inputs random, output garbage
    arena, descs = random_program(rng, hw, n_layers=4)             # a chain, with residual ADDs
    program = random_packed_program(rng, hw, n_layers=4)           # the same as a sps_pynq.program.Program
    descs = in_bands(rng, descs)                                   # CONV/pools cut into random row/channel bands

See sps_pynq/testing/layers.py for the options (op kinds, Descriptor field overrides).
"""
from sps_pynq.testing.layers import (OP_KINDS, ArenaBuilder, as_program, in_bands, random_layer,  # noqa: F401
                                     random_packed_program, random_program, side_by_side)
