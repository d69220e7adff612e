"""The virtual ZCU104: a server speaking PYNQ 4's remote protocol (gRPC) with a model of the SPS core behind it.

    overlay.py   the virtual overlay files (sps.bit + sps.hwh), generated from the Python definitions
    core.py      the SPS core's registers and a run of the program with the golden model
    server.py    the gRPC services the unmodified pynq client calls (device files, MMIO, buffers)

Not a board: nothing here comes from Vivado, and power rails do not exist. Torch- and onnx-free.
"""
