"""Test-session settings.

Under pytest-xdist every worker is one process per core. torch (OpenMP) would start one thread per core in each
of them, and OpenMP threads spin while they wait for each other: with more busy threads than free cores the quick
MNIST evidence test was measured 14x slower (27 s alone, 376 s with two threads next to one busy core).
One thread per worker avoids that; it must be set before torch is first imported.
"""
import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
