"""What usmoe accepts as an array: host data (NumPy, lists, PyTorch CPU
tensors, ml_dtypes bf16) and GPU data (PyTorch, CuPy, anything with
__cuda_array_interface__ or CUDA DLPack), checked once here so that routers
and layers report bad input the same way (ValueError saying what is wrong)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import _ir

_DLPACK_ELEMENTS = {(2, 32): "f32", (2, 16): "f16", (4, 16): "bf16"}
_CAI_ELEMENTS = {"<f4": "f32", "<f2": "f16"}
_TORCH_ELEMENTS = {"torch.float32": "f32", "torch.float16": "f16", "torch.bfloat16": "bf16"}


# The native-endian host dtypes usmoe reads, by dtype object (a dict lookup
# instead of dtype.name, which costs microseconds per call).
_ELEMENT_OF_DTYPE = {np.dtype(np.float32): "f32", np.dtype(np.float16): "f16"}


def _native():
    from ._native_loader import native
    return native()


class HostArray:
    """A C-contiguous host array: `data` (bf16 as raw uint16 bits), its
    MLIR element type, and how to give results back ("numpy", "torch" or
    "ml_dtypes" for bf16)."""

    def __init__(self, data: np.ndarray, element: str, framework: str):
        self.data, self.element, self.framework = data, element, framework


def host_array(value, name: str) -> HostArray:
    """`value` as a HostArray of f32/f16/bf16 (ValueError otherwise)."""
    framework = "numpy"
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor
        framework = "torch"
        t = value.detach().cpu()
        if not t.is_contiguous():  # read in place or not at all: no silent copies
            raise ValueError(f"{name} must be contiguous (call .contiguous(); a transposed "
                             "expert weight is weight_layout='out_in')")
        if str(t.dtype) == "torch.bfloat16":
            import torch
            raw = t.view(torch.int16).numpy().view(np.uint16)
            return HostArray(raw, "bf16", framework)
        value = t.numpy()
    if isinstance(value, (list, tuple)):
        value = np.asarray(value, dtype=np.float32)
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{name} must be an array or a nested list, got {type(value).__name__}")
    element = _ELEMENT_OF_DTYPE.get(value.dtype)  # not dtype.name: slow per call
    if element is None:
        dtype = value.dtype.name
        element = _ir.MLIR_ELEMENT.get(dtype)
        if element is None:
            raise ValueError(f"{name} must be float32, float16 or bfloat16, got {dtype} "
                             "(cast with .astype(np.float32))")
    if not value.flags["C_CONTIGUOUS"]:
        raise ValueError(f"{name} must be C-contiguous (use np.ascontiguousarray)")
    if not value.dtype.isnative:  # e.g. big-endian data: read it by value
        value = value.astype(value.dtype.newbyteorder("="))
    if element == "bf16":
        return HostArray(value.view(np.uint16), element, "ml_dtypes")
    return HostArray(value, element, framework)


def from_host_result(raw: np.ndarray, element: str, framework: str):
    """A result array in the caller's host type (bf16 from its raw bits)."""
    if element == "bf16":
        if framework == "torch":
            import torch
            return torch.from_numpy(raw.view(np.int16)).view(torch.bfloat16)
        import ml_dtypes
        return raw.view(ml_dtypes.bfloat16)
    if framework == "torch":
        import torch
        return torch.from_numpy(raw)
    return raw


class DeviceView:
    """An array already on CUDA device 0: pointer, shape, element type, the
    framework to hand results back in, its current stream, and whatever must
    stay alive while usmoe reads it (a DLPack capsule)."""

    def __init__(self, ptr, shape, element, framework=None, stream=0, keep_alive=None):
        self.ptr, self.shape, self.element = ptr, list(shape), element
        self.framework, self.stream, self.keep_alive = framework, stream, keep_alive


def compact_strides(shape):
    strides, s = [], 1
    for d in reversed(shape):
        strides.insert(0, s)
        s *= d
    return strides


def device_view(value, name: str, stream: Optional[int] = None) -> Optional[DeviceView]:
    """A DeviceView of `value` if it lives on a CUDA device, else None.
    `stream`: where usmoe will read it (a DLPack producer orders its pending
    writes before that stream; None: the legacy default stream)."""
    if hasattr(value, "is_cuda") and hasattr(value, "data_ptr"):  # torch.Tensor
        if not value.is_cuda:
            return None
        if str(value.dtype) not in _TORCH_ELEMENTS:
            raise ValueError(f"{name} must be float32, float16 or bfloat16, got {value.dtype}")
        if not value.is_contiguous():
            raise ValueError(f"{name} must be contiguous (call .contiguous())")
        if value.device.index not in (None, 0):
            raise ValueError(f"usmoe runs on CUDA device 0, {name} is on {value.device}")
        import torch
        view = DeviceView(value.data_ptr(), value.shape, _TORCH_ELEMENTS[str(value.dtype)],
                          "torch", torch.cuda.current_stream().cuda_stream)
    elif hasattr(value, "__cuda_array_interface__"):
        cai = value.__cuda_array_interface__
        if cai["typestr"] not in _CAI_ELEMENTS:
            raise ValueError(f"{name} must be float32 or float16, got {cai['typestr']}")
        shape = list(cai["shape"])
        itemsize = int(cai["typestr"][2:])
        if cai.get("strides") is not None and \
                list(cai["strides"]) != [s * itemsize for s in compact_strides(shape)]:
            raise ValueError(f"{name} must be C-contiguous")
        framework, stream = None, 0
        if type(value).__module__.startswith("cupy"):
            import cupy
            if value.device.id != 0:
                raise ValueError(f"usmoe runs on CUDA device 0, {name} is on device "
                                 f"{value.device.id}")
            framework, stream = "cupy", cupy.cuda.get_current_stream().ptr
        view = DeviceView(cai["data"][0], shape, _CAI_ELEMENTS[cai["typestr"]], framework,
                          stream)
    elif hasattr(value, "__dlpack__") and hasattr(value, "__dlpack_device__"):
        device_type, device_id = value.__dlpack_device__()
        if int(device_type) != 2:  # not kDLCUDA: host data
            return None
        if int(device_id) != 0:
            raise ValueError(f"usmoe runs on CUDA device 0, {name} is on device {device_id}")
        # Held until the call returns: the producer keeps ownership.
        capsule = value.__dlpack__(stream=stream or 1)
        info = _native().dlpack_view(capsule)
        element = _DLPACK_ELEMENTS.get(tuple(info["dtype"][:2]))
        if element is None or info["dtype"][2] != 1:
            raise ValueError(f"{name} must be float32, float16 or bfloat16, got DLPack "
                             f"dtype {info['dtype']}")
        shape = list(info["shape"])
        if info["strides"] is not None and list(info["strides"]) != compact_strides(shape):
            raise ValueError(f"{name} must be C-contiguous")
        view = DeviceView(info["data"], shape, element, None, 0, capsule)
    else:
        return None
    if view.ptr % 16:
        # The kernels read rows with 16-byte vector loads.
        raise ValueError(f"{name} on the GPU must start at a 16-byte aligned address "
                         "(pass a fresh tensor, e.g. x.clone())")
    return view


def stream_handle(stream) -> Optional[int]:
    """A CUstream handle from an int, a torch.cuda.Stream (.cuda_stream) or
    a CuPy stream (.ptr); None stays None."""
    if stream is None:
        return None
    for attribute in ("cuda_stream", "ptr"):
        if hasattr(stream, attribute):
            return int(getattr(stream, attribute))
    if isinstance(stream, int) and stream >= 0:
        return stream
    raise ValueError(f"stream must be a CUDA stream handle (int), a torch.cuda.Stream or a "
                     f"CuPy stream, got {stream!r}")


def logits_shape(shape, name: str = "logits"):
    """[T, E] or [B, T, E] -> [B, T, E] (ValueError otherwise)."""
    shape = list(shape)
    if len(shape) == 2:
        shape = [1] + shape
    if len(shape) != 3:
        raise ValueError(f"{name} must be [T, E] or [B, T, E], got shape {tuple(shape)}")
    if shape[2] < 1:
        raise ValueError(f"{name} must have at least one expert (E >= 1)")
    return shape


def allocator(framework, stream: int):
    """`alloc(nbytes) -> cuda.DeviceArray` for results on the GPU: from the
    framework's caching allocator when the caller uses PyTorch or CuPy
    (stream-ordered, no cuMemAlloc/cuMemFree and their implicit
    synchronizations per call), else plain device allocations."""
    from . import cuda
    if framework == "torch":
        import torch
        current = torch.cuda.current_stream().cuda_stream

        def alloc(nbytes):
            t = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
            if stream and stream != current:
                # Launched on another stream: keep the block until that work is done.
                t.record_stream(torch.cuda.ExternalStream(stream))
            return cuda.DeviceArray(0, ptr=t.data_ptr(), owner=t)
        return alloc
    if framework == "cupy":
        import cupy

        def alloc(nbytes):
            a = cupy.empty(nbytes, dtype=cupy.uint8)
            return cuda.DeviceArray(0, ptr=a.data.ptr, owner=a)
        return alloc
    return cuda.DeviceArray


def wrap_stream_results(raw, signatures, framework, stream: int, keep_alive=()):
    """The results of a stream call (`raw`: (allocation, data, shape) per
    result, `signatures`: (element, shape) per result) as arrays on the GPU
    in the caller's framework, each owning its allocation (freed on
    `stream` when the last array over it goes): torch tensors or CuPy
    arrays through the CUDA array interface (no copy, no native module
    needed), CudaArray when the caller has no framework. `keep_alive`:
    what the launched kernels may still read (the arguments' DLPack
    capsules), held as long as the results."""
    from . import cuda
    from .cuda_array import CudaArray
    owners = {a: cuda.StreamAllocation(a, stream) for a, _, _ in raw if a}
    out = []
    for (allocation, data, shape), (element, _) in zip(raw, signatures):
        # A result inside another's allocation (or an argument's memory)
        # keeps every allocation of the call alive.
        owner = owners[allocation] if allocation else tuple(owners.values())
        bf16 = element == "bf16"
        dtype = "bfloat16" if bf16 else cuda.ELEMENT_DTYPES[element]
        array = CudaArray(cuda.DeviceArray(0, ptr=data, owner=owner), shape,
                          np.int16 if bf16 and framework else dtype, stream,
                          keep_alive=[k for k in keep_alive if k is not None])
        if framework == "torch":
            import torch
            tensor = torch.as_tensor(array, device="cuda")
            out.append(tensor.view(torch.bfloat16) if bf16 else tensor)
        elif framework == "cupy":
            import cupy
            out.append(cupy.asarray(array))  # CuPy has no bfloat16: raw bits as int16
        else:
            out.append(array)
    return out


def _dtype_name(dtype) -> str:
    return "bfloat16" if str(dtype) == "bfloat16" else np.dtype(dtype).name


def _nbytes(dims, dtype) -> int:
    itemsize = 2 if _dtype_name(dtype) == "bfloat16" else np.dtype(dtype).itemsize
    return int(np.prod(dims, dtype=np.int64)) * itemsize
