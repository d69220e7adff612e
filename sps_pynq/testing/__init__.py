"""Checks that ship with the package: random layer programs (`layers`, also what host_tests/layer_factory.py
re-exports for the tests) and the self-test `sps-pynq selftest` runs on a board after installation (`selftest`).

numpy only (torch- and onnx-free): this runs on the board.
"""
from .layers import OP_KINDS, ArenaBuilder, in_bands, random_layer, random_packed_program, random_program

__all__ = ["OP_KINDS", "ArenaBuilder", "in_bands", "random_layer", "random_packed_program", "random_program"]
