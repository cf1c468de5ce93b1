"""A bounded, seeded fuzz of the Python API (fuzz_api_driver.py): random
router options and arrays, valid and invalid, on the CPU and the GPU
emulator. Each seed runs in its own process, so a crash fails the test
instead of the suite; any exception other than ValueError, TypeError or
RuntimeError is printed with its input. A longer run:
`python3 test/python/fuzz_api_driver.py SEED CALLS`."""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.parametrize("seed", [11, 12])
def test_random_api_calls_never_crash(seed):
    out = subprocess.run([sys.executable, os.path.join(HERE, "fuzz_api_driver.py"), str(seed),
                          "300"], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "0 unexpected exceptions" in out.stdout
