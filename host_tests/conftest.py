"""Test-session settings.

Under pytest-xdist every worker is one process per core. torch (OpenMP) would start one thread per core in each
of them, and OpenMP threads spin while they wait for each other: with more busy threads than free cores the quick
MNIST evidence test was measured 14x slower (27 s alone, 376 s with two threads next to one busy core).
One thread per worker avoids that; it must be set before torch is first imported.
"""
import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402


class _ZooPrograms:
    """compile(name, n_calib=..., **options): a zoo network compiled once per test process for each set of options
    (seeded standard-normal calibration inputs of the network's input shape), shared by every test that asks."""

    def __init__(self):
        self._cache = {}

    def compile(self, name: str, n_calib: int = 2, **options):
        key = (name, n_calib, tuple(sorted(options.items())))
        if key not in self._cache:
            pytest.importorskip("torch")
            from sps_pynq import zoo
            from sps_pynq.compiler import compile_model
            shape = tuple(options.get("input_shape") or zoo.input_shape(name))
            calib = np.random.default_rng(0).standard_normal((n_calib,) + shape).astype(np.float32)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._cache[key] = compile_model(name, calib=calib, **options)
        return self._cache[key]


@pytest.fixture(scope="session")
def zoo_programs():
    return _ZooPrograms()
