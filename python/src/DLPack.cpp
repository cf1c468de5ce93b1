//===- DLPack.cpp - DLPack capsules for usmoe's arrays --------------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "DLPack.h"

#include <Python.h>

namespace py = pybind11;
using namespace usmoe_py;

namespace {

// DLPack's C ABI (dlpack.h, v0.8), field for field.
struct DLDevice {
  int32_t device_type;
  int32_t device_id;
};
struct DLDataType {
  uint8_t code;
  uint8_t bits;
  uint16_t lanes;
};
struct DLTensor {
  void *data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t *shape;
  int64_t *strides;
  uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void *manager_ctx;
  void (*deleter)(DLManagedTensor *self);
};

constexpr const char *kCapsuleName = "dltensor";
constexpr const char *kUsedCapsuleName = "used_dltensor";

/// What a capsule of ours owns: the shape storage and a reference to the
/// Python object that owns the memory.
struct Export {
  DLManagedTensor tensor;
  std::vector<int64_t> shape;
  PyObject *owner;
};

/// Called by the consumer when it is done, from any thread (with or
/// without the GIL), or by our capsule destructor if never consumed.
void deleteExport(DLManagedTensor *self) {
  auto *e = static_cast<Export *>(self->manager_ctx);
  PyGILState_STATE gil = PyGILState_Ensure();
  Py_XDECREF(e->owner);
  PyGILState_Release(gil);
  delete e;
}

void destroyCapsule(PyObject *capsule) {
  // A consumed capsule was renamed "used_dltensor": the consumer owns it.
  if (!PyCapsule_IsValid(capsule, kCapsuleName))
    return;
  auto *t = static_cast<DLManagedTensor *>(
      PyCapsule_GetPointer(capsule, kCapsuleName));
  if (t && t->deleter)
    t->deleter(t);
}

} // namespace

py::capsule usmoe_py::makeDLPackCapsule(py::object owner, uint64_t data,
                                        std::vector<int64_t> shape,
                                        uint8_t code, uint8_t bits,
                                        int32_t deviceType, int32_t deviceId) {
  auto *e = new Export();
  e->shape = std::move(shape);
  e->owner = owner.release().ptr();
  DLTensor &t = e->tensor.dl_tensor;
  t.data = reinterpret_cast<void *>(data);
  t.device = {deviceType, deviceId};
  t.ndim = int32_t(e->shape.size());
  t.dtype = {code, bits, 1};
  t.shape = e->shape.data();
  t.strides = nullptr; // compact row-major
  t.byte_offset = 0;
  e->tensor.manager_ctx = e;
  e->tensor.deleter = deleteExport;
  PyObject *capsule = PyCapsule_New(&e->tensor, kCapsuleName, destroyCapsule);
  if (!capsule) {
    deleteExport(&e->tensor);
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::capsule>(capsule);
}

DLPackView usmoe_py::readDLPackCapsule(const py::capsule &capsule) {
  PyObject *c = capsule.ptr();
  if (PyCapsule_IsValid(c, kUsedCapsuleName))
    throw py::value_error("the DLPack capsule was already consumed");
  if (!PyCapsule_IsValid(c, kCapsuleName))
    throw py::value_error("not a DLPack capsule (expected a \"dltensor\" "
                          "capsule from __dlpack__())");
  auto *m =
      static_cast<DLManagedTensor *>(PyCapsule_GetPointer(c, kCapsuleName));
  const DLTensor &t = m->dl_tensor;
  if (t.ndim < 0 || (t.ndim > 0 && !t.shape))
    throw py::value_error("malformed DLPack tensor");
  DLPackView v;
  v.data = reinterpret_cast<uint64_t>(t.data) + t.byte_offset;
  v.deviceType = t.device.device_type;
  v.deviceId = t.device.device_id;
  v.code = t.dtype.code;
  v.bits = t.dtype.bits;
  v.lanes = t.dtype.lanes;
  v.shape.assign(t.shape, t.shape + t.ndim);
  if (t.strides)
    v.strides.assign(t.strides, t.strides + t.ndim);
  return v;
}
