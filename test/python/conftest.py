import os
import sys

import numpy as np
import pytest

# The package is built into build/python_packages (or $USMOE_PYTHON_PACKAGES);
# with USMOE_TEST_INSTALLED=1 the tests use the one pip installed instead.
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INSTALLED = os.environ.get("USMOE_TEST_INSTALLED") == "1"
_PKG = os.environ.get("USMOE_PYTHON_PACKAGES", os.path.join(_ROOT, "build", "python_packages"))
if not INSTALLED and _PKG not in sys.path:
    sys.path.insert(0, _PKG)

WORKED_LOGITS = np.array([[3.0, 1.0, 2.5, -1.0],
                          [0.2, 0.1, 0.0, -0.1],
                          [2.0, 2.2, 1.8, 0.5],
                          [-0.5, 0.0, 1.0, 2.0]], np.float32)


@pytest.fixture
def worked_logits():
    return WORKED_LOGITS.copy()


def torch_with_gpu():
    """PyTorch if it is installed and sees a GPU, else None (for skipif)."""
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


# Tests compile into a throwaway kernel cache, never the user's.
if "USMOE_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile
    os.environ["USMOE_CACHE_DIR"] = tempfile.mkdtemp(prefix="usmoe-test-cache-")
    atexit.register(shutil.rmtree, os.environ["USMOE_CACHE_DIR"], True)


def has_gpu():
    import shutil
    return shutil.which("nvidia-smi") is not None


# Where device="cuda" runs in the GPU-path tests: the GPU emulator in order
# and under two schedule seeds (always, so CI runs every GPU kernel), and a
# real GPU where there is one.
GPU_PATHS = ["emulator", "emulator-seed-1", "emulator-seed-2", "cuda"]


@pytest.fixture(params=GPU_PATHS)
def gpu_path(request, monkeypatch):
    """Sets up where device="cuda" runs and returns the path's name."""
    if request.param == "cuda":
        if not has_gpu():
            pytest.skip("needs a GPU (the emulator variants cover this test here)")
        monkeypatch.delenv("USMOE_GPU_EMULATOR", raising=False)
    else:
        monkeypatch.setenv("USMOE_GPU_EMULATOR", "1")
        if request.param.startswith("emulator-seed-"):
            monkeypatch.setenv("USMOE_EMU_SEED", request.param.rsplit("-", 1)[1])
        else:
            monkeypatch.delenv("USMOE_EMU_SEED", raising=False)
    return request.param


@pytest.fixture(params=["cpu", "emulator-seed-1", "emulator-seed-2"]
                + (["cuda"] if has_gpu() else []))
def route_device(request, monkeypatch):
    """The device= of the differential tests: the CPU, and the GPU path on
    the emulator under two schedule seeds (in-order runs are covered by the
    `gpu_path` tests, gpu-check's emulate and lit) or on a real GPU."""
    if request.param == "cpu":
        return "cpu"
    if request.param == "cuda":
        monkeypatch.delenv("USMOE_GPU_EMULATOR", raising=False)
        return "cuda"
    monkeypatch.setenv("USMOE_GPU_EMULATOR", "1")
    monkeypatch.setenv("USMOE_EMU_SEED", request.param.rsplit("-", 1)[1])
    return "cuda"


@pytest.fixture
def built_layers(monkeypatch):
    """The usmoe.MoeLayer objects built while the test runs, in order (to
    check what the PyTorch and HF wrappers hand the compiled layer)."""
    from usmoe import layer
    built = []
    original = layer.MoeLayer.__init__

    def recording(self, *args, **kwargs):
        original(self, *args, **kwargs)
        built.append(self)
    monkeypatch.setattr(layer.MoeLayer, "__init__", recording)
    return built
