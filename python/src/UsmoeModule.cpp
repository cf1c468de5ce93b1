//===- UsmoeModule.cpp - the usmoe._usmoe Python extension ----------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// A narrow binding: run a pipeline on IR text, JIT-compile a tensor function
// and call it on NumPy arrays, and make / read DLPack capsules. Everything else
// (routers, caching, argument checks) is Python in usmoe/.
//
//===----------------------------------------------------------------------===//

#include "Compiler.h"
#include "DLPack.h"
#include "JitHeap.h"
#include "usmoe/Support/ShapeExpr.h"
#include "llvm/ADT/SmallVector.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

namespace py = pybind11;
using namespace usmoe_py;

namespace {

/// The NumPy dtype name of a result of element `element`.
const char *dtypeName(const std::string &element) {
  if (element == "f32")
    return "float32";
  if (element == "f16")
    return "float16";
  if (element == "bf16")
    return "uint16"; // raw bf16 bits; usmoe/ reinterprets them
  if (element == "i32")
    return "int32";
  if (element == "i64")
    return "int64";
  return "bool";
}

/// NumPy's functions and the dtypes of results, looked up once: an import
/// and a dtype parsed from its name for each of a router's seven results
/// were a fifth of a decode call. Used with the GIL held; never freed (they
/// must not be released after the interpreter).
struct NumPyObjects {
  py::object frombuffer, dtype;
  std::map<std::string, py::object> dtypes;

  static NumPyObjects &get() {
    static NumPyObjects *objects = [] {
      py::module_ numpy = py::module_::import("numpy");
      return new NumPyObjects{
          numpy.attr("frombuffer"), numpy.attr("dtype"), {}};
    }();
    return *objects;
  }

  /// The dtype of results of element `element`.
  const py::object &dtypeOf(const std::string &element) {
    auto it = dtypes.find(element);
    if (it == dtypes.end())
      it = dtypes.emplace(element, dtype(dtypeName(element))).first;
    return it->second;
  }
};

/// A new C-contiguous array made by NumPy itself (PyArray_NewFromDescr
/// with no strides, so NumPy computes them: pybind11 2.10's
/// py::array(dtype, shape) computes them from the NumPy 1 descriptor
/// layout, which is wrong under NumPy 2). The C call, not numpy.empty
/// through Python: a decode call returns seven small arrays, and parsing
/// numpy.empty's arguments was most of their cost.
py::array emptyArray(const std::string &element,
                     const std::vector<int64_t> &shape) {
  const py::object &descr = NumPyObjects::get().dtypeOf(element);
  auto &api = py::detail::npy_api::get();
  llvm::SmallVector<Py_intptr_t, 4> dims(shape.begin(), shape.end());
  Py_INCREF(descr.ptr()); // PyArray_NewFromDescr steals the descriptor.
  PyObject *array = api.PyArray_NewFromDescr_(
      api.PyArray_Type_, descr.ptr(), int(dims.size()), dims.data(),
      /*strides=*/nullptr, /*data=*/nullptr, /*flags=*/0, nullptr);
  if (!array)
    throw py::error_already_set();
  return py::reinterpret_steal<py::array>(array);
}

/// The NumPy (kind, itemsize) an argument of element `element` must have:
/// bf16 travels as its raw bits (uint16 or a 2-byte void/ml_dtypes type).
bool dtypeMatches(const std::string &element, const std::string &kind,
                  int64_t itemsize) {
  if (element == "f32")
    return kind == "f" && itemsize == 4;
  if (element == "f16")
    return kind == "f" && itemsize == 2;
  if (element == "bf16")
    return (kind == "u" || kind == "V") && itemsize == 2;
  if (element == "i32")
    return kind == "i" && itemsize == 4;
  if (element == "i64")
    return kind == "i" && itemsize == 8;
  return kind == "b" && itemsize == 1;
}

/// The dtypes that passed dtypeMatches for an element, kept (with the GIL
/// held) so that a decode step's arguments skip the four Python attribute
/// reads of the check: NumPy shares one dtype object among the arrays of
/// a type, so a repeated call finds it by identity. Never freed (as
/// NumPyObjects).
struct AcceptedDtypes {
  static constexpr size_t kKept = 16;
  std::vector<std::pair<py::object, std::string>> accepted;

  static AcceptedDtypes &get() {
    static AcceptedDtypes *kept = new AcceptedDtypes;
    return *kept;
  }

  bool contains(const py::handle &dtype, const std::string &element) const {
    for (const auto &[known, knownElement] : accepted)
      if (known.ptr() == dtype.ptr() && knownElement == element)
        return true;
    return false;
  }

  void add(const py::handle &dtype, const std::string &element) {
    if (accepted.size() < kKept)
      accepted.emplace_back(py::reinterpret_borrow<py::object>(dtype), element);
  }
};

/// Checks argument `i` by its dtype (read through Python attributes, which
/// mean the same under NumPy 1 and 2) and returns it as a host array.
HostArray hostArgument(const py::handle &value, size_t i,
                       const TensorSignature &sig,
                       std::vector<py::array> &keepAlive) {
  auto which = [i] { return "argument " + std::to_string(i); };
  if (!py::isinstance<py::array>(value))
    throw py::type_error(
        which() + " must be a NumPy array, got " +
        std::string(py::str(value.get_type().attr("__name__"))));
  py::array a = py::reinterpret_borrow<py::array>(value);
  py::object dtype = a.attr("dtype");
  AcceptedDtypes &known = AcceptedDtypes::get();
  if (!known.contains(dtype, sig.element)) {
    std::string kind = py::str(dtype.attr("kind"));
    auto itemsize = dtype.attr("itemsize").cast<int64_t>();
    if (!dtypeMatches(sig.element, kind, itemsize))
      throw py::type_error(which() + " must hold " + sig.element +
                           " elements, got " + std::string(py::str(dtype)));
    // '=' native, '|' not applicable, '<' / '>' explicit.
    std::string order = py::str(dtype.attr("byteorder"));
    bool littleEndianHost = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
    if ((order == ">" && littleEndianHost) ||
        (order == "<" && !littleEndianHost))
      throw py::value_error(which() +
                            " is not in the machine's byte order "
                            "(convert it with .astype(dtype.newbyteorder"
                            "('=')))");
    known.add(dtype, sig.element);
  }
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(which() + " must be C-contiguous");
  HostArray h;
  h.data = const_cast<void *>(a.data());
  for (py::ssize_t d = 0; d < a.ndim(); ++d)
    h.shape.push_back(a.shape(d));
  keepAlive.push_back(a);
  return h;
}

/// Results from this size up are lent to NumPy instead of copied (a copy
/// into fresh pages costs more than the lending from here).
constexpr size_t kLentResultBytes = size_t(64) << 10;

/// A compiled function's result storage, lent to NumPy through the buffer
/// protocol; freed when the last array viewing it goes away.
struct ResultStorage {
  std::shared_ptr<void> owner;
  void *data;
  size_t bytes;
};

py::list callFunction(const JitFunction &fn, const py::list &arrays) {
  std::vector<HostArray> inputs;
  std::vector<py::array> keepAlive;
  const auto &sigs = fn.arguments();
  if (arrays.size() != sigs.size())
    throw py::value_error("expected " + std::to_string(sigs.size()) +
                          " arrays, got " + std::to_string(arrays.size()));
  for (size_t i = 0; i < sigs.size(); ++i)
    inputs.push_back(hostArgument(arrays[i], i, sigs[i], keepAlive));
  std::vector<OwnedResult> results;
  {
    py::gil_scoped_release release;
    results = fn.call(inputs);
  }
  py::list out;
  NumPyObjects &numpy = NumPyObjects::get();
  for (size_t i = 0; i < results.size(); ++i) {
    OwnedResult &r = results[i];
    const TensorSignature &sig = fn.results()[i];
    // Bytes from the signature: py::array::nbytes() reads the NumPy 1
    // descriptor layout, wrong under NumPy 2.
    size_t bytes = size_t(sig.elementBytes());
    for (int64_t d : r.shape)
      bytes *= size_t(d);
    if (!bytes || !r.owner || bytes < kLentResultBytes) {
      // Small results are copied: cheaper than lending a buffer.
      py::array array = emptyArray(sig.element, r.shape);
      if (bytes && r.owner)
        std::memcpy(array.mutable_data(), r.data, bytes);
      out.append(array);
      continue;
    }
    // NumPy reads the result where the code wrote it: the array's base
    // owns the allocation (no copy, no fresh pages for the caller).
    py::tuple dims(r.shape.size());
    for (size_t d = 0; d < r.shape.size(); ++d)
      dims[d] = py::int_(r.shape[d]);
    py::object storage =
        py::cast(ResultStorage{std::move(r.owner), r.data, bytes});
    out.append(numpy.frombuffer(storage, numpy.dtypeOf(sig.element))
                   .attr("reshape")(dims));
  }
  return out;
}

} // namespace

PYBIND11_MODULE(_usmoe, m) {
  m.doc() = "usmoe native module: MLIR pipelines and the CPU JIT";
  py::register_exception<CompileError>(m, "CompileError", PyExc_ValueError);
  py::register_exception<DeviceError>(m, "DeviceError", PyExc_RuntimeError);

  m.def("run_pipeline", &runPipeline, py::arg("source"), py::arg("pipeline"),
        "Run a textual pass pipeline on IR text and return the printed IR.");

  m.def(
      "compile_gpu",
      [](const std::string &source, const std::string &chip,
         const std::string &features, const std::string &format,
         unsigned optLevel) {
        GpuArtifacts a =
            compileForGpu(source, chip, features, format, optLevel);
        py::dict files;
        for (auto &[name, bytes] : a.files)
          files[py::str(name)] = py::bytes(bytes);
        return py::make_tuple(files, a.metadata);
      },
      py::arg("source"), py::arg("chip") = "sm_90",
      py::arg("features") = "+ptx80", py::arg("format") = "isa",
      py::arg("opt_level") = 3,
      "Lower IR with usmoe-to-nvvm; returns ({file: bytes}, metadata JSON).");

  m.def(
      "compile_gpu_host",
      [](const std::string &source, const std::string &name,
         const std::string &chip, const std::string &features, int optLevel) {
        HostObject o;
        {
          py::gil_scoped_release release;
          o = compileGpuHostObject(source, name, GpuTarget{chip, features, ""},
                                   optLevel);
        }
        auto signatures = [](const std::vector<TensorSignature> &list) {
          py::list out;
          for (const TensorSignature &s : list)
            out.append(py::make_tuple(s.element, s.shape));
          return out;
        };
        py::dict d;
        d["object"] = py::bytes(o.object);
        d["packed"] = o.packedSymbol;
        d["arguments"] = signatures(o.args);
        d["results"] = signatures(o.res);
        d["host_reads_device"] = o.hostReadsDevice;
        d["kernels"] = o.kernelMetadata;
        return d;
      },
      py::arg("source"), py::arg("name"), py::arg("chip") = "sm_90",
      py::arg("features") = "+ptx80", py::arg("opt_level") = 3,
      "Compiles the GPU function `name` (usmoe-to-nvvm, kernels embedded) to "
      "a position-independent object for this host: {object, packed (the "
      "symbol usmoe_rt_host_call takes), arguments, results, "
      "host_reads_device, kernels (the kernels' metadata JSON)}. Link it with "
      "`cc -shared` to run it without "
      "MLIR.");

  m.def(
      "evaluate_shape_expr",
      [](const std::string &text,
         const std::map<std::string, int64_t> &values) {
        llvm::StringMap<int64_t> symbols;
        for (const auto &[name, value] : values)
          symbols[name] = value;
        std::string error;
        std::optional<int64_t> v =
            mlir::usmoe::evaluateShapeExpr(text, symbols, error);
        if (!v)
          throw py::value_error("'" + text + "': " + error);
        return *v;
      },
      py::arg("text"), py::arg("symbols"),
      "The value of a kernel table's shape expression (grid, launches, "
      "bytes) for the given symbols.");

  m.def(
      "jit_heap_stats",
      [] {
        JitHeapStats stats = jitHeapStats();
        py::dict d;
        d["reused_blocks"] = stats.reusedBlocks;
        d["fresh_blocks"] = stats.freshBlocks;
        d["kept_bytes"] = stats.keptBytes;
        return d;
      },
      "The JIT heap's large blocks (from 64 KB) since the process started: "
      "reused_blocks (served from freed ones), fresh_blocks (from malloc), "
      "kept_bytes (freed and kept for reuse now).");

  m.def("dlpack_capsule", &makeDLPackCapsule, py::arg("owner"), py::arg("data"),
        py::arg("shape"), py::arg("code"), py::arg("bits"),
        py::arg("device_type"), py::arg("device_id"),
        "A DLPack capsule over row-major memory at `data` that keeps `owner` "
        "alive while a consumer uses it.");
  m.def(
      "dlpack_view",
      [](const py::capsule &capsule) {
        DLPackView v = readDLPackCapsule(capsule);
        py::dict d;
        d["data"] = v.data;
        d["device"] = py::make_tuple(v.deviceType, v.deviceId);
        d["dtype"] = py::make_tuple(v.code, v.bits, v.lanes);
        d["shape"] = py::tuple(py::cast(v.shape));
        d["strides"] = v.strides.empty()
                           ? py::object(py::none())
                           : py::object(py::tuple(py::cast(v.strides)));
        return d;
      },
      py::arg("capsule"),
      "Reads an unconsumed DLPack capsule (data, device, dtype, shape, "
      "strides in elements or None) without taking ownership.");

  py::class_<ResultStorage>(m, "_ResultStorage", py::buffer_protocol())
      .def_buffer([](ResultStorage &r) {
        return py::buffer_info(r.data, 1, "B", 1,
                               {static_cast<py::ssize_t>(r.bytes)}, {1});
      });

  py::class_<JitFunction>(m, "JitFunction")
      .def(py::init([](const std::string &source, const std::string &name,
                       int optLevel) {
             return std::make_unique<JitFunction>(source, name, optLevel);
           }),
           py::arg("source"), py::arg("name"), py::arg("opt_level") = 3)
      .def_static(
          "for_gpu",
          [](const std::string &source, const std::string &name,
             const std::string &chip, const std::string &features,
             const std::string &runtimePath, int optLevel) {
            GpuTarget target{chip, features, runtimePath};
            return std::make_unique<JitFunction>(source, name, optLevel,
                                                 &target);
          },
          py::arg("source"), py::arg("name"), py::arg("chip"),
          py::arg("features"), py::arg("runtime_path"),
          py::arg("opt_level") = 3,
          "Compiles `name` with usmoe-to-nvvm; calls run its kernels on the "
          "GPU through the runtime library at `runtime_path`.")
      .def_static(
          "for_cpu",
          [](const std::string &source, const std::string &name,
             const std::string &expertGemm, const std::string &runtimePath,
             const std::string &openmpRuntime, int optLevel) {
            if (expertGemm != "loops" && expertGemm != "onednn")
              throw py::value_error("expert_gemm must be 'loops' or 'onednn', "
                                    "got '" +
                                    expertGemm + "'");
            CpuTarget target{expertGemm == "onednn", runtimePath,
                             openmpRuntime};
            return std::make_unique<JitFunction>(source, name, optLevel,
                                                 nullptr, nullptr, &target);
          },
          py::arg("source"), py::arg("name"), py::arg("expert_gemm"),
          py::arg("runtime_path"), py::arg("openmp_runtime") = "",
          py::arg("opt_level") = 3,
          "Compiles `name` with usmoe-to-cpu; with expert_gemm='onednn' the "
          "expert GEMMs call libusmoe_cpu_runtime.so at `runtime_path`; with "
          "an `openmp_runtime` (libomp) the parallel loops run on its "
          "threads.")
      .def_static(
          "for_emulator",
          [](const std::string &source, const std::string &name,
             const std::string &runtimePath, int optLevel) {
            EmulatorTarget target{runtimePath};
            return std::make_unique<JitFunction>(source, name, optLevel,
                                                 nullptr, &target);
          },
          py::arg("source"), py::arg("name"), py::arg("runtime_path"),
          py::arg("opt_level") = 3,
          "Compiles `name` with usmoe-to-gpu-emu; calls run its GPU kernels "
          "on the GPU emulator at `runtime_path` (host arrays in and out).")
      .def_property_readonly("arguments",
                             [](const JitFunction &f) {
                               py::list out;
                               for (const auto &s : f.arguments())
                                 out.append(py::make_tuple(s.element, s.shape));
                               return out;
                             })
      .def_property_readonly("results",
                             [](const JitFunction &f) {
                               py::list out;
                               for (const auto &s : f.results())
                                 out.append(py::make_tuple(s.element, s.shape));
                               return out;
                             })
      .def("__call__", &callFunction, py::arg("arrays"))
      .def(
          "call_device",
          [](const JitFunction &fn, const py::list &arrays, uintptr_t stream) {
            std::vector<HostArray> inputs;
            for (const py::handle &item : arrays) {
              auto [ptr, shape] =
                  item.cast<std::pair<uintptr_t, std::vector<int64_t>>>();
              inputs.push_back(
                  HostArray{reinterpret_cast<void *>(ptr), std::move(shape)});
            }
            std::vector<DeviceResult> results;
            {
              py::gil_scoped_release release;
              results =
                  fn.callOnDevice(inputs, reinterpret_cast<void *>(stream));
            }
            py::list out;
            for (const DeviceResult &r : results)
              out.append(py::make_tuple(r.allocation, r.data, r.shape));
            return out;
          },
          py::arg("arrays"), py::arg("stream") = 0,
          "Calls a GPU function on device memory: `arrays` are (device "
          "pointer, shape) of row-major arrays; the kernels run "
          "asynchronously on `stream` (a CUstream handle, 0 = the legacy "
          "default stream). Returns (allocation, data, shape) per result: "
          "device memory allocated on `stream`; free `allocation` (0: owned "
          "elsewhere) with usmoe_rt_free_async.");
}
