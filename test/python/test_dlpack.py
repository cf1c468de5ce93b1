"""The DLPack bridge of the native module, on host memory (no GPU needed):
the same code hands GPU results to PyTorch / CuPy / JAX."""

import gc
import sys

import numpy as np
import pytest

import usmoe
from usmoe import _usmoe

KDL_CPU = 1


class HostExport:
    """Exports a NumPy array through usmoe's capsule maker, as CudaArray
    does for device memory."""

    def __init__(self, array, code, bits):
        self.array, self.code, self.bits = array, code, bits

    def __dlpack__(self, stream=None, **kwargs):
        return _usmoe.dlpack_capsule(self, self.array.ctypes.data, list(self.array.shape),
                                     self.code, self.bits, KDL_CPU, 0)

    def __dlpack_device__(self):
        return (KDL_CPU, 0)


@pytest.mark.parametrize("dtype, code, bits", [(np.float32, 2, 32), (np.int32, 0, 32)])
def test_numpy_reads_our_capsules_without_a_copy(dtype, code, bits):
    source = (np.arange(24) % 3 == 0).astype(dtype).reshape(2, 3, 4)
    view = np.from_dlpack(HostExport(source, code, bits))
    assert view.dtype == np.dtype(dtype) and view.shape == (2, 3, 4)
    np.testing.assert_array_equal(view, source)
    assert view.ctypes.data == source.ctypes.data


def test_the_capsule_keeps_its_owner_alive_until_released():
    owner = HostExport(np.ones(8, np.float32), 2, 32)
    base = sys.getrefcount(owner)
    view = np.from_dlpack(owner)
    assert sys.getrefcount(owner) == base + 1
    del view
    gc.collect()
    assert sys.getrefcount(owner) == base
    # A capsule nobody consumes releases the owner when it dies.
    capsule = owner.__dlpack__()
    assert sys.getrefcount(owner) == base + 1
    del capsule
    assert sys.getrefcount(owner) == base


def test_torch_reads_our_capsules():
    torch = pytest.importorskip("torch")
    source = np.arange(6, dtype=np.float32).reshape(2, 3)
    tensor = torch.from_dlpack(HostExport(source, 2, 32))
    assert tensor.dtype == torch.float32 and tuple(tensor.shape) == (2, 3)
    assert tensor.data_ptr() == source.ctypes.data
    # Masks travel as DLPack bool, which PyTorch reads from 2.0 on (NumPy
    # 1.24 and Debian's PyTorch 1.13 cannot).
    if int(torch.__version__.split(".")[0]) < 2:
        return
    mask = np.array([[True, False, True]])
    tensor = torch.from_dlpack(HostExport(mask, 6, 8))
    assert tensor.dtype == torch.bool and tensor.tolist() == [[True, False, True]]


def test_dlpack_view_reads_foreign_capsules():
    a = np.arange(12, dtype=np.float16).reshape(3, 4)
    view = _usmoe.dlpack_view(a.__dlpack__())
    assert view["data"] == a.ctypes.data and view["device"] == (KDL_CPU, 0)
    assert view["dtype"] == (2, 16, 1) and view["shape"] == (3, 4)
    assert view["strides"] is None or view["strides"] == (4, 1)
    transposed = _usmoe.dlpack_view(a.T.__dlpack__())
    assert transposed["shape"] == (4, 3) and transposed["strides"] == (1, 4)


def test_dlpack_view_rejects_what_is_not_a_fresh_capsule():
    torch = pytest.importorskip("torch")
    capsule = np.zeros(3, np.float32).__dlpack__()
    torch.from_dlpack(capsule)  # consumes it
    with pytest.raises(ValueError, match="already consumed"):
        _usmoe.dlpack_view(capsule)
    with pytest.raises(TypeError):
        _usmoe.dlpack_view(42)


def test_cuda_array_is_exported_from_the_package():
    assert usmoe.CudaArray.__name__ == "CudaArray"
