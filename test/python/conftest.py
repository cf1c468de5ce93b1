import os
import sys

import numpy as np
import pytest

# The package is built into build/python_packages (or $USMOE_PYTHON_PACKAGES).
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_PKG = os.environ.get("USMOE_PYTHON_PACKAGES", os.path.join(_ROOT, "build", "python_packages"))
if _PKG not in sys.path:
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
