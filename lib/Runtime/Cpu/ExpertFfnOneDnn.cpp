//===- ExpertFfnOneDnn.cpp - moe.expert_ffn on oneDNN matmuls -------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Each expert's rows are one GEMM per weight: G = X W1[e], U = X W3[e] (f32
// out), H = silu(G) * U, out = H W2[e]. The matmul primitives take the
// number of rows at run time, so one primitive per (type, K, N, weight
// strides) serves every expert and every call; they are created once and
// kept. Weights are read in place through their strides (either layout, the
// halves of a fused gate/up tensor).
//
//===----------------------------------------------------------------------===//

#include "usmoe/Runtime/CpuRuntime.h"
#include "usmoe/Support/Bfloat16.h"

#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>
#include <type_traits>
#include <vector>

// The OpenMP runtime oneDNN runs on (Debian's is built with GNU OpenMP; the
// library links that libgomp, so these set the thread count oneDNN reads).
extern "C" void omp_set_num_threads(int);
extern "C" int omp_get_max_threads(void);

namespace {

/// A matmul dst[M, N] (f32, rows ldc apart) = src[M, K] (rows lda apart) x
/// weights[K, N] (strides kStride, nStride), M given at each call.
struct MatmulShape {
  dnnl_data_type_t type;
  int64_t k, n, lda, ldc, kStride, nStride;
  bool operator<(const MatmulShape &o) const {
    return std::tie(type, k, n, lda, ldc, kStride, nStride) <
           std::tie(o.type, o.k, o.n, o.lda, o.ldc, o.kStride, o.nStride);
  }
};

/// oneDNN's CPU engine and stream, and the primitives made so far.
class OneDnn {
public:
  static OneDnn &get() {
    static OneDnn instance;
    return instance;
  }

  bool ok() const { return engine != nullptr; }

  /// dst = src x weights for `rows` rows; false (and a message on stderr)
  /// if oneDNN fails.
  bool matmul(const MatmulShape &shape, int64_t rows, const void *src,
              const void *weights, float *dst) {
    dnnl_primitive_t primitive = primitiveFor(shape);
    dnnl_stream_t stream = threadStream();
    if (!primitive || !stream)
      return false;
    dnnl_memory_desc_t descs[3];
    dnnl_memory_t memories[3] = {nullptr, nullptr, nullptr};
    bool done = describe(shape, rows, descs) &&
                check(dnnl_memory_create(&memories[0], &descs[0], engine,
                                         const_cast<void *>(src)),
                      "source memory") &&
                check(dnnl_memory_create(&memories[1], &descs[1], engine,
                                         const_cast<void *>(weights)),
                      "weights memory") &&
                check(dnnl_memory_create(&memories[2], &descs[2], engine, dst),
                      "destination memory");
    if (done) {
      dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, memories[0]},
                                 {DNNL_ARG_WEIGHTS, memories[1]},
                                 {DNNL_ARG_DST, memories[2]}};
      done =
          check(dnnl_primitive_execute(primitive, stream, 3, args), "matmul") &&
          check(dnnl_stream_wait(stream), "stream wait");
    }
    for (dnnl_memory_t memory : memories)
      if (memory)
        dnnl_memory_destroy(memory);
    return done;
  }

private:
  OneDnn() {
    if (!check(dnnl_engine_create(&engine, dnnl_cpu, 0), "engine"))
      engine = nullptr;
  }

  /// This thread's stream (primitives run concurrently from the pool's
  /// threads, each on its own stream).
  dnnl_stream_t threadStream() {
    thread_local dnnl_stream_t stream = nullptr;
    if (!stream &&
        !check(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags),
               "stream"))
      stream = nullptr;
    return stream;
  }

  /// The source, weights and destination descriptors of `shape` for
  /// `rows` rows (DNNL_RUNTIME_DIM_VAL: given at each execution).
  static bool describe(const MatmulShape &shape, int64_t rows,
                       dnnl_memory_desc_t (&descs)[3]) {
    int64_t srcDims[2] = {rows, shape.k}, srcStrides[2] = {shape.lda, 1};
    int64_t weightsDims[2] = {shape.k, shape.n};
    int64_t weightsStrides[2] = {shape.kStride, shape.nStride};
    int64_t dstDims[2] = {rows, shape.n}, dstStrides[2] = {shape.ldc, 1};
    return check(dnnl_memory_desc_init_by_strides(&descs[0], 2, srcDims,
                                                  shape.type, srcStrides),
                 "source descriptor") &&
           check(dnnl_memory_desc_init_by_strides(&descs[1], 2, weightsDims,
                                                  shape.type, weightsStrides),
                 "weights descriptor") &&
           check(dnnl_memory_desc_init_by_strides(&descs[2], 2, dstDims,
                                                  dnnl_f32, dstStrides),
                 "destination descriptor");
  }

  static bool check(dnnl_status_t status, const char *what) {
    if (status == dnnl_success)
      return true;
    std::fprintf(stderr, "usmoe cpu runtime: oneDNN failed (%s): status %d\n",
                 what, int(status));
    return false;
  }

  dnnl_primitive_t primitiveFor(const MatmulShape &shape) {
    std::lock_guard<std::mutex> lock(mutex);
    auto found = primitives.find(shape);
    if (found != primitives.end())
      return found->second;
    dnnl_memory_desc_t descs[3];
    dnnl_matmul_desc_t desc;
    dnnl_primitive_desc_t primitiveDesc = nullptr;
    dnnl_primitive_t primitive = nullptr;
    bool made = describe(shape, DNNL_RUNTIME_DIM_VAL, descs) &&
                check(dnnl_matmul_desc_init(&desc, &descs[0], &descs[1],
                                            nullptr, &descs[2]),
                      "matmul descriptor") &&
                check(dnnl_primitive_desc_create(&primitiveDesc, &desc, nullptr,
                                                 engine, nullptr),
                      "matmul primitive descriptor") &&
                check(dnnl_primitive_create(&primitive, primitiveDesc),
                      "matmul primitive");
    if (primitiveDesc)
      dnnl_primitive_desc_destroy(primitiveDesc);
    if (!made)
      return nullptr;
    primitives[shape] = primitive;
    return primitive;
  }

  dnnl_engine_t engine = nullptr;
  std::mutex mutex;
  std::map<MatmulShape, dnnl_primitive_t> primitives;
};

/// Runs task(i) for i in [0, count) on up to `threads` threads, the caller
/// included. Every thread runs oneDNN single-threaded: the work is split
/// here into blocks fixed by the shapes alone, and each output element is
/// one GEMM's full sum over K, so results do not depend on the thread count
/// (oneDNN's own threading splits K for small M, and then they would).
class WorkerPool {
public:
  static constexpr int64_t kParallelFlops = int64_t(1) << 24;

  static WorkerPool &get() {
    // Never destroyed: its threads wait for work until the process ends
    // (destroying joinable std::threads at exit would terminate).
    static WorkerPool *pool = new WorkerPool;
    return *pool;
  }

  /// `flops` sizes the work: below kParallelFlops waking other threads
  /// costs more than it saves (decode steps), and the caller runs it all.
  void run(int threads, int64_t count, int64_t flops,
           const std::function<void(int64_t)> &task) {
    if (count <= 0)
      return;
    int helpers =
        flops < kParallelFlops ? 0 : int(std::min<int64_t>(threads, count)) - 1;
    SingleThreadedOneDnn here;
    if (helpers <= 0) {
      for (int64_t i = 0; i < count; ++i)
        task(i);
      return;
    }
    // One run at a time (callers on several threads take turns).
    std::lock_guard<std::mutex> oneRun(runMutex);
    std::unique_lock<std::mutex> lock(mutex);
    while (int(workers.size()) < helpers)
      workers.emplace_back(
          [this, index = int(workers.size())] { serve(index); });
    current = &task;
    total = count;
    next = 0;
    wanted = helpers;
    unfinished = helpers;
    ++generation;
    lock.unlock();
    wake.notify_all();
    drain(task);
    lock.lock();
    finished.wait(lock, [this] { return unfinished == 0; });
    current = nullptr;
  }

private:
  /// Makes oneDNN run single-threaded on the calling thread while alive.
  struct SingleThreadedOneDnn {
    int before = omp_get_max_threads();
    SingleThreadedOneDnn() { omp_set_num_threads(1); }
    ~SingleThreadedOneDnn() { omp_set_num_threads(before); }
  };

  void drain(const std::function<void(int64_t)> &task) {
    for (int64_t i = next++; i < total; i = next++)
      task(i);
  }

  void serve(int index) {
    omp_set_num_threads(1);
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
      wake.wait(lock, [&] { return generation != seen && index < wanted; });
      seen = generation;
      const std::function<void(int64_t)> *task = current;
      lock.unlock();
      drain(*task);
      lock.lock();
      if (--unfinished == 0)
        finished.notify_one();
    }
  }

  std::mutex runMutex, mutex;
  std::condition_variable wake, finished;
  std::vector<std::thread> workers;
  const std::function<void(int64_t)> *current = nullptr;
  std::atomic<int64_t> next{0};
  int64_t total = 0;
  int wanted = 0, unfinished = 0;
  uint64_t generation = 0;
};

std::atomic<int32_t> requestedThreads{0};

int threadsToUse() {
  static const int available =
      std::max(1u, std::thread::hardware_concurrency());
  int requested = requestedThreads.load();
  return requested > 0 ? requested : available;
}

/// The weight matrix of expert `e` in a stacked [E, a, b] weight, as the
/// [K, N] operand of a GEMM: `transposed` when K is its last dimension.
struct WeightMatrix {
  const char *data;
  int64_t kStride, nStride;
};

WeightMatrix expertMatrix(const UsmoeMemref3D &w, int64_t e, bool transposed,
                          int64_t elementBytes) {
  const char *base = static_cast<const char *>(w.aligned) +
                     (w.offset + e * w.strides[0]) * elementBytes;
  if (transposed)
    return {base, 1, w.strides[1]};
  return {base, w.strides[1], 1};
}

/// silu(g) = g / (1 + exp(-g)), as the generated loops, with exp written
/// out so that a row of them vectorizes (libm's expf is a call per
/// element: with it, 13% of a bf16 layer's perf samples at T = 2048). exp(t)
/// for t = k ln2 + r, |r| <= ln2 / 2, is 2 * 2^(k-1) times a degree-6
/// Taylor polynomial in r (relative error below 2^-23 before rounding;
/// 2^(k-1) keeps k = 128 representable). t is clamped to [-87, ln(FLT_MAX)]
/// for the polynomial: above it exp is inf, as expf's (so g = -inf gives
/// NaN and g < -88.72 gives -0); near -87 and below it is 0 or about 1e-38,
/// which 1 + exp absorbs as it would expf's value; NaN stays NaN.
inline float silu(float g) {
  constexpr float kLogMax = 88.7228f;
  float t = -g;
  float clamped = t < kLogMax ? (t > -87.0f ? t : -87.0f) : kLogMax;
  // Round to nearest by the 1.5 * 2^23 shift (exact for |k| < 2^22).
  float k = (clamped * 1.44269504f + 12582912.0f) - 12582912.0f;
  float r = (clamped - k * 0.693145751953125f) - k * 1.42860682e-6f;
  float p =
      1.0f +
      r * (1.0f + r * (0.5f + r * (1.0f / 6 +
                                   r * (1.0f / 24 +
                                        r * (1.0f / 120 + r * (1.0f / 720))))));
  int32_t bits = (int32_t(k) + 126) << 23;
  float halfScale;
  std::memcpy(&halfScale, &bits, sizeof(halfScale));
  float e = t > kLogMax ? std::numeric_limits<float>::infinity()
                        : (2.0f * p) * halfScale;
  return g / (1.0f + e);
}

/// out[c] = silu(gate[c]) * up[c] for a row, rounded to `Element`.
template <typename Element>
inline void swigluRowBody(const float *gate, const float *up, Element *out,
                          int64_t n) {
  for (int64_t c = 0; c < n; ++c) {
    float h = silu(gate[c]) * up[c];
    if constexpr (std::is_same_v<Element, uint16_t>)
      out[c] = mlir::usmoe::roundToBfloat16(h);
    else
      out[c] = h;
  }
}

/// The row loop, vectorized by the compiler and cloned for AVX-512 and AVX2
/// (chosen at load time from the CPU's features).
__attribute__((target_clones("avx512f", "avx2", "default"))) void
swigluRow(const float *gate, const float *up, float *out, int64_t n) {
  swigluRowBody(gate, up, out, n);
}
__attribute__((target_clones("avx512f", "avx2", "default"))) void
swigluRow(const float *gate, const float *up, uint16_t *out, int64_t n) {
  swigluRowBody(gate, up, out, n);
}

/// A block of one expert's GEMM: rows [row, row + rows) of the plan,
/// output columns [column, column + columns).
struct Block {
  int64_t expert, row, rows, column, columns;
};

/// 1024 rows: a block's packed weight slice is reused over more rows than
/// with 256 (measured 3-20% faster layers on the Xeon VM, bf16 and f32),
/// and a block's f32 gate and up products (1 MB each) about fit a core's
/// 2 MB L2.
constexpr int64_t kRowBlock = 1024, kColumnBlock = 256;

/// The blocks of every expert's rows times `n` output columns.
std::vector<Block> blocksOf(const int32_t *offsets, int64_t experts,
                            int64_t n) {
  std::vector<Block> blocks;
  for (int64_t e = 0; e < experts; ++e)
    for (int64_t r = offsets[e]; r < offsets[e + 1]; r += kRowBlock)
      for (int64_t c = 0; c < n; c += kColumnBlock)
        blocks.push_back({e, r,
                          std::min<int64_t>(kRowBlock, offsets[e + 1] - r), c,
                          std::min(kColumnBlock, n - c)});
  return blocks;
}

template <bool Bf16>
int32_t expertFfn(UsmoeMemref2D *x, UsmoeMemref1D *offsets, UsmoeMemref3D *w1,
                  UsmoeMemref3D *w3, UsmoeMemref3D *w2, UsmoeMemref2D *out,
                  int32_t layout) {
  OneDnn &dnn = OneDnn::get();
  if (!dnn.ok())
    return 1;
  using Element = std::conditional_t<Bf16, uint16_t, float>;
  const int64_t elementBytes = sizeof(Element);
  const dnnl_data_type_t type = Bf16 ? dnnl_bf16 : dnnl_f32;
  const bool outIn = layout == 1;
  const int64_t experts = w1->sizes[0];
  const int64_t rows = x->sizes[0], width = x->sizes[1];
  const int64_t ffn = outIn ? w1->sizes[1] : w1->sizes[2];
  const auto *offset =
      static_cast<const int32_t *>(offsets->aligned) + offsets->offset;
  const auto *xs = static_cast<const Element *>(x->aligned) + x->offset;
  float *result = static_cast<float *>(out->aligned) + out->offset;
  if (w1->strides[1] != w3->strides[1] || w1->strides[2] != 1 ||
      w3->strides[2] != 1 || w2->strides[2] != 1)
    return 2; // lowered code passes unit innermost strides, w1/w3 alike

  // h = silu(x W1) * (x W3), rounded to the weights' type for the second
  // GEMM (the spec allows it; oneDNN multiplies operands of one type).
  // Kept per calling thread and only grown: a fresh buffer per call was
  // zeroed and page-faulted in every time (23 MB at T = 2048, F = 2816).
  // (The workers reach it through this pointer: a thread_local named in the
  // lambdas would be each worker's own.)
  thread_local std::vector<Element> callerHidden;
  if (callerHidden.size() < size_t(rows * ffn))
    callerHidden.resize(size_t(rows * ffn));
  Element *hidden = callerHidden.data();
  std::atomic<bool> failed{false};
  WorkerPool &pool = WorkerPool::get();
  std::vector<Block> up = blocksOf(offset, experts, ffn);
  pool.run(threadsToUse(), int64_t(up.size()), 4 * rows * width * ffn,
           [&](int64_t i) {
             const Block &b = up[size_t(i)];
             thread_local std::vector<float> gate, upper;
             gate.resize(size_t(kRowBlock * kColumnBlock));
             upper.resize(gate.size());
             WeightMatrix m1 = expertMatrix(*w1, b.expert, outIn, elementBytes);
             WeightMatrix m3 = expertMatrix(*w3, b.expert, outIn, elementBytes);
             MatmulShape shape{type,      width,      b.columns, width,
                               b.columns, m1.kStride, m1.nStride};
             const Element *src = xs + b.row * width;
             if (!dnn.matmul(shape, b.rows, src,
                             m1.data + b.column * m1.nStride * elementBytes,
                             gate.data()) ||
                 !dnn.matmul(shape, b.rows, src,
                             m3.data + b.column * m3.nStride * elementBytes,
                             upper.data())) {
               failed = true;
               return;
             }
             for (int64_t r = 0; r < b.rows; ++r)
               swigluRow(gate.data() + r * b.columns,
                         upper.data() + r * b.columns,
                         hidden + (b.row + r) * ffn + b.column, b.columns);
           });
  if (failed)
    return 3;
  std::vector<Block> down = blocksOf(offset, experts, width);
  pool.run(threadsToUse(), int64_t(down.size()), 2 * rows * width * ffn,
           [&](int64_t i) {
             const Block &b = down[size_t(i)];
             WeightMatrix m2 = expertMatrix(*w2, b.expert, outIn, elementBytes);
             MatmulShape shape{type,  ffn,        b.columns, ffn,
                               width, m2.kStride, m2.nStride};
             if (!dnn.matmul(shape, b.rows, hidden + b.row * ffn,
                             m2.data + b.column * m2.nStride * elementBytes,
                             result + b.row * width + b.column))
               failed = true;
           });
  return failed ? 3 : 0;
}

} // namespace

extern "C" int32_t _mlir_ciface_usmoe_cpu_expert_ffn_f32(
    UsmoeMemref2D *x, UsmoeMemref1D *offsets, UsmoeMemref3D *w1,
    UsmoeMemref3D *w3, UsmoeMemref3D *w2, UsmoeMemref2D *out, int32_t layout) {
  return expertFfn<false>(x, offsets, w1, w3, w2, out, layout);
}

extern "C" int32_t _mlir_ciface_usmoe_cpu_expert_ffn_bf16(
    UsmoeMemref2D *x, UsmoeMemref1D *offsets, UsmoeMemref3D *w1,
    UsmoeMemref3D *w3, UsmoeMemref3D *w2, UsmoeMemref2D *out, int32_t layout) {
  return expertFfn<true>(x, offsets, w1, w3, w2, out, layout);
}

extern "C" void usmoe_cpu_set_num_threads(int32_t threads) {
  requestedThreads = threads < 0 ? 0 : threads;
}

extern "C" int32_t usmoe_cpu_get_num_threads(void) { return threadsToUse(); }
