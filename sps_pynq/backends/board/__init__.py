"""The `board` backend: the SPS core on a PYNQ board (or the virtual ZCU104), through pynq.

    discovery.py   which device and which overlay
    driver.py      the core's register sequence (SpsCore), testable without pynq
    backend.py     BoardBackend: the Backend interface on one contiguous DDR buffer

Torch- and onnx-free; pynq is imported only when the backend is used.
"""
from .backend import BoardBackend
from .discovery import board_available, find_overlay

__all__ = ["BoardBackend", "board_available", "find_overlay"]
