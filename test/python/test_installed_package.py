"""`pip install .` gives a complete package (run by scripts/test.sh in a
venv with PyPI's NumPy 2 and USMOE_TEST_INSTALLED=1; skipped otherwise)."""

import os

import numpy as np
import pytest

import usmoe
from conftest import INSTALLED

pytestmark = pytest.mark.skipif(not INSTALLED, reason="tests the pip-installed package")


def test_the_package_is_the_installed_one():
    here = os.path.dirname(usmoe.__file__)
    assert "site-packages" in here
    for library in ("libusmoe_cuda_runtime.so", "libusmoe_gpu_emulator.so"):
        assert os.path.exists(os.path.join(here, library)), library
    assert int(np.__version__.split(".")[0]) >= 2


def test_the_installed_package_routes_and_emulates(monkeypatch):
    logits = np.random.default_rng(1).normal(size=(2, 9, 8)).astype(np.float32)
    cpu = usmoe.route(logits, mode="unified", k=1.5)
    monkeypatch.setenv("USMOE_GPU_EMULATOR", "1")
    emulated = usmoe.route(logits, mode="unified", k=1.5, device="cuda")
    np.testing.assert_array_equal(cpu.mask, emulated.mask)
    np.testing.assert_array_equal(cpu.token_ids, usmoe.reference.route(logits, mode="unified",
                                                                         k=1.5).token_ids)
