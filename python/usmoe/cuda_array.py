"""CudaArray: a usmoe result that stays in GPU memory.

`usmoe.route(..., device="cuda")` on logits that already live on the GPU
returns its plan on the GPU too: PyTorch tensors for PyTorch input, CuPy
arrays for CuPy input, and CudaArray otherwise. A CudaArray owns its device
memory and hands it to any framework without a copy, through
`__cuda_array_interface__` (v3) or DLPack (`__dlpack__`,
`__dlpack_device__`); `.numpy()` copies it to the host.

Streams: the data is ready on the stream usmoe launched on (`stream`; 0 is
the legacy default stream). A consumer on another stream gets the data
after that stream is synchronized.
"""

from __future__ import annotations

import numpy as np

from . import cuda

_DLPACK_CUDA = 2
# dtype name -> (DLPack type code, bits)
_DLPACK_TYPES = {"float32": (2, 32), "float16": (2, 16), "bfloat16": (4, 16),
                 "int32": (0, 32), "bool": (6, 8)}


class CudaArray:
    """A C-contiguous array in the memory of CUDA device 0. `dtype` is a
    NumPy dtype, or the string "bfloat16" (NumPy has none; DLPack carries
    it, the CUDA array interface cannot)."""

    def __init__(self, buffer: "cuda.DeviceArray", shape, dtype, stream: int = 0,
                 keep_alive=()):
        self._buffer = buffer
        # Device buffers the producing kernels may still read (freed with this).
        self._keep_alive = tuple(keep_alive)
        self.shape = tuple(int(d) for d in shape)
        self.dtype = "bfloat16" if str(dtype) == "bfloat16" else np.dtype(dtype)
        self.stream = int(stream)

    @property
    def _itemsize(self) -> int:
        return 2 if self.dtype == "bfloat16" else self.dtype.itemsize

    @property
    def _dtype_name(self) -> str:
        return "bfloat16" if self.dtype == "bfloat16" else self.dtype.name

    @property
    def ptr(self) -> int:
        return self._buffer.ptr.value

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self._itemsize

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def _interface_stream(self) -> int:
        # The array interface spells the legacy default stream 1 (0 is not allowed).
        return self.stream or 1

    @property
    def __cuda_array_interface__(self) -> dict:
        if self.dtype == "bfloat16":
            raise AttributeError("bfloat16 has no CUDA array interface type; use DLPack")
        return {"shape": self.shape, "typestr": self.dtype.str, "strides": None,
                "data": (self.ptr, False), "version": 3,
                "stream": self._interface_stream()}

    def __dlpack_device__(self):
        return (_DLPACK_CUDA, 0)

    def __dlpack__(self, stream=None, max_version=None, dl_device=None, copy=None):
        if dl_device is not None and tuple(dl_device) != self.__dlpack_device__():
            raise BufferError("usmoe's CudaArray lives on CUDA device 0; copy with .numpy()")
        if copy:
            raise BufferError("CudaArray exports without copying (copy=True is not supported)")
        # A consumer on another stream may read only once our work is done.
        if stream not in (None, -1, self._interface_stream()):
            cuda.synchronize(self.stream)
        code, bits = _DLPACK_TYPES[self._dtype_name]
        from . import _usmoe
        return _usmoe.dlpack_capsule(self, self.ptr, list(self.shape), code, bits,
                                     _DLPACK_CUDA, 0)

    def numpy(self) -> np.ndarray:
        """A host copy (waits for the producing stream)."""
        cuda.synchronize(self.stream)
        if self.dtype == "bfloat16":
            raw = self._buffer.download(self.shape, np.uint16)
            try:
                import ml_dtypes
            except ImportError:
                return raw  # the raw bf16 bits
            return raw.view(ml_dtypes.bfloat16)
        return self._buffer.download(self.shape, self.dtype)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d CudaArray")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"CudaArray(shape={self.shape}, dtype={self._dtype_name}, device='cuda:0')"
