//===- Emulator.cpp - run lowered GPU kernels on the CPU ------------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// A launch runs its blocks one after another (in a random order under
// USMOE_EMU_SEED); a block runs its threads as fibers in sweeps: each ready
// thread runs until it finishes or waits at a barrier, a shuffle or an
// mma.sync. A warp's shuffle (or mma) completes when all of its participating
// lanes wait at it (exact lockstep exchange); a barrier releases when every
// thread of the block waits at it, which starts a new interval of the race
// checker (and, under a seed, a new random thread order). A sweep in which
// nobody could run is a deadlock and is reported with its cause. All state is
// per OS thread, so independent callers do not interfere.
//
//===----------------------------------------------------------------------===//

#include "Fiber.h"
#include "Shadow.h"
#include "usmoe/Runtime/GpuEmulator.h"

#include <algorithm>
#include <cinttypes>
#include <csetjmp>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

using namespace usmoe::emu;

namespace {
/// Hardware limits checked at launch (those of every sm_75+ GPU).
constexpr int64_t kMaxThreadsPerBlock = 1024;
constexpr int64_t kMaxBlockDim[3] = {1024, 1024, 64};
constexpr int64_t kMaxGridDim[3] = {(int64_t(1) << 31) - 1, 65535, 65535};
constexpr int64_t kMaxStaticSharedBytes = 48 * 1024;
constexpr int kWarpSize = 32;

struct Launch;
struct Block;
} // namespace

struct UsmoeEmuThread {
  enum Status { Ready, AtBarrier, AtShuffle, AtMma, Done, Aborted };
  Fiber *fiber = nullptr;
  Block *block = nullptr;
  int64_t tid[3] = {0, 0, 0};
  uint32_t linear = 0;
  Status status = Ready;
  const char *waitSite = nullptr;
  int32_t shflValue = 0, shflOffset = 0, shflWidth = 0, shflMode = 0;
  int64_t shflResult = 0;
  /// An mma.sync's fragments: A (8), B (4), C (4) in; D (4) out.
  float mmaIn[16] = {}, mmaOut[4] = {};
  /// Memory accesses since the thread last waited (barrier or shuffle).
  int64_t accessesSinceWait = 0;
};

namespace {
struct Launch {
  UsmoeEmuKernel kernel = nullptr;
  void *args = nullptr;
  const char *name = nullptr;
  const char *site = nullptr;
  int64_t grid[3] = {1, 1, 1}, blockDim[3] = {1, 1, 1};
  uint32_t blockThreads = 1;
  uint32_t launchStamp = 0;
  std::mt19937_64 rng;
  bool randomize = false;
  bool aborted = false;
  /// Accesses a thread may make without waiting before it counts as
  /// spinning on something no other thread will do (see usmoe_emu_access).
  int64_t spinLimit = int64_t(1) << 28;
};

struct Block {
  Launch *launch;
  int64_t id[3];
  uint32_t linear;
  std::vector<UsmoeEmuThread> threads;
  char *shared;
  uint32_t blockStamp, stamp;
};

/// Everything the emulator keeps, per OS thread.
struct State {
  std::vector<std::unique_ptr<Fiber>> fibers;
  std::vector<char> sharedMemory;
  Shadow shadow;
  uint32_t stamp = 0;
  bool printErrors = true;
  bool failed = false;
  std::string error;
  int64_t launches = 0, blocks = 0, switches = 0;
  /// Where a failed launch goes inside usmoe_emu_guarded_call.
  std::jmp_buf *guard = nullptr;
};

State &state() {
  thread_local State s;
  return s;
}

/// Records the first failure (later ones are consequences) and prints it
/// unless the embedder takes errors itself.
void recordError(const char *message) {
  State &s = state();
  if (s.failed)
    return;
  s.failed = true;
  s.error = message;
  if (s.printErrors)
    std::fprintf(stderr, "%s\n", message);
}

/// snprintf into `buf` (no heap: a failing fiber's stack is never unwound).
void format(char *buf, size_t size, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, size, fmt, args);
  va_end(args);
}

const char *orUnknown(const char *site) { return site ? site : "<unknown>"; }

/// "thread (x,y,z) of block (x,y,z)".
void describeThread(char *buf, size_t size, const int64_t tid[3],
                    const int64_t bid[3]) {
  format(buf, size,
         "thread (%" PRId64 ",%" PRId64 ",%" PRId64 ") of block (%" PRId64
         ",%" PRId64 ",%" PRId64 ")",
         tid[0], tid[1], tid[2], bid[0], bid[1], bid[2]);
}

void describeThread(char *buf, size_t size, const UsmoeEmuThread &t) {
  describeThread(buf, size, t.tid, t.block->id);
}

/// The (x, y, z) of a linear index in a grid or block of shape `dims`.
void setCoordinates(int64_t out[3], int64_t linear, const int64_t dims[3]) {
  out[0] = linear % dims[0];
  out[1] = linear / dims[0] % dims[1];
  out[2] = linear / (dims[0] * dims[1]);
}

/// Reports a failure of the kernel at `site` and stops the launch.
void failLaunch(const Launch &launch, const char *what, const char *site,
                const char *detail) {
  char message[2048];
  format(message, sizeof(message),
         "usmoe-emu: error: kernel '%s' (launched at %s): %s at %s%s%s",
         launch.name, orUnknown(launch.site), what, orUnknown(site),
         detail && *detail ? "; " : "", detail ? detail : "");
  recordError(message);
}

/// Reports a failure of GPU thread `t` and stops its launch (callable from
/// the scheduler, which then abandons the block).
void reportThreadFailure(UsmoeEmuThread *t, const char *what, const char *site,
                         const char *detail) {
  char who[160], full[1400];
  describeThread(who, sizeof(who), *t);
  format(full, sizeof(full), "%s%s%s", who, detail && *detail ? "; " : "",
         detail ? detail : "");
  failLaunch(*t->block->launch, what, site, full);
  t->block->launch->aborted = true;
  t->status = UsmoeEmuThread::Aborted;
}

/// Fails the calling GPU thread from inside its fiber: reports, then leaves
/// the fiber for good (nothing on its stack needs unwinding).
[[noreturn]] void failThread(UsmoeEmuThread *t, const char *what,
                             const char *site, const char *detail) {
  reportThreadFailure(t, what, site, detail);
  t->fiber->suspend();
  std::abort(); // an aborted fiber is never resumed
}

void threadMain(void *arg) {
  auto *t = static_cast<UsmoeEmuThread *>(arg);
  t->block->launch->kernel(t, t->block->launch->args);
  t->status = UsmoeEmuThread::Done;
  t->fiber->suspend();
  std::abort();
}

const char *statusName(const UsmoeEmuThread &t) {
  switch (t.status) {
  case UsmoeEmuThread::Done:
    return "has exited";
  case UsmoeEmuThread::AtBarrier:
    return "waits at a barrier";
  case UsmoeEmuThread::AtShuffle:
    return "waits at another shuffle";
  case UsmoeEmuThread::AtMma:
    return "waits at another mma.sync";
  default:
    return "is running";
  }
}

/// Scheduler side: completes the shuffle of `t`'s warp if all its
/// participating lanes wait at it, with the semantics of PTX shfl.sync as
/// convert-gpu-to-nvvm emits it (clamp 32 - width for up, width - 1 otherwise;
/// an out-of-range source lane yields the lane's own value and valid = 0).
void tryShuffle(Block &block, UsmoeEmuThread &t) {
  uint32_t first = t.linear / kWarpSize * kWarpSize;
  uint32_t end = std::min<uint32_t>(first + kWarpSize, block.threads.size());
  int32_t width = t.shflWidth;
  if (width < 1 || width > kWarpSize) {
    char detail[64];
    format(detail, sizeof(detail), "width %d is not in [1, 32]", width);
    return reportThreadFailure(&t, "invalid shuffle", t.waitSite, detail);
  }
  uint32_t last = std::min<uint32_t>(end, first + width);
  if (t.linear >= last) {
    char detail[96];
    format(detail, sizeof(detail), "lane %u executes a shuffle of width %d",
           t.linear - first, width);
    return reportThreadFailure(&t, "shuffle outside its width", t.waitSite,
                               detail);
  }
  for (uint32_t i = first; i < last; ++i) {
    const UsmoeEmuThread &lane = block.threads[i];
    if (lane.status != UsmoeEmuThread::AtShuffle || lane.waitSite != t.waitSite)
      return; // not everyone is there yet (deadlocks are found later)
    if (lane.shflWidth != width || lane.shflMode != t.shflMode)
      return reportThreadFailure(
          &t, "shuffle with a non-uniform width or mode", t.waitSite,
          "every lane of a shuffle must pass the same width and mode");
  }
  for (uint32_t i = first; i < last; ++i) {
    UsmoeEmuThread &lane = block.threads[i];
    int32_t laneId = int32_t(i - first);
    int32_t b = lane.shflOffset & 31;
    int32_t clamp =
        lane.shflMode == USMOE_EMU_SHFL_UP ? kWarpSize - width : width - 1;
    int32_t j = 0;
    bool valid = false;
    switch (lane.shflMode) {
    case USMOE_EMU_SHFL_UP:
      j = laneId - b;
      valid = j >= clamp;
      break;
    case USMOE_EMU_SHFL_DOWN:
      j = laneId + b;
      valid = j <= clamp;
      break;
    case USMOE_EMU_SHFL_XOR:
      j = laneId ^ b;
      valid = j <= clamp;
      break;
    default:
      j = b;
      valid = j <= clamp;
      break;
    }
    if (!valid)
      j = laneId;
    uint32_t source = first + uint32_t(j);
    // A lane outside the shuffle gives an undefined value on hardware:
    // poison it so that a kernel that uses it shows it.
    uint32_t bits =
        source < last ? uint32_t(block.threads[source].shflValue) : 0x7fc0dead;
    lane.shflResult = int64_t(bits) | (int64_t(valid) << 32);
  }
  for (uint32_t i = first; i < last; ++i)
    block.threads[i].status = UsmoeEmuThread::Ready;
}

/// Scheduler side: completes the mma.sync of `t`'s warp once all 32 lanes
/// wait at it: D = A * B + C for a 16x16 A, 16x8 B and 16x8 C/D spread over
/// the lanes as PTX mma.m16n8k16 (.f16/.bf16, f32 accumulators) spreads
/// them (group g = lane / 4, q = lane % 4): A register r holds row
/// g + 8 (r & 1), columns 2q + 8 (r >> 1) + {0, 1}; B register r rows
/// 2q + 8 r + {0, 1} of column g; C/D register r row g + 8 r, columns
/// 2q + {0, 1}. Products are exact in f32; the sum runs over k in order.
void tryMma(Block &block, UsmoeEmuThread &t) {
  uint32_t first = t.linear / kWarpSize * kWarpSize;
  if (first + kWarpSize > block.threads.size()) {
    char detail[128];
    format(detail, sizeof(detail),
           "the warp has %zu lanes; mma.sync needs all 32",
           block.threads.size() - first);
    return reportThreadFailure(&t, "mma.sync in a partial warp", t.waitSite,
                               detail);
  }
  for (uint32_t i = first; i < first + kWarpSize; ++i) {
    const UsmoeEmuThread &lane = block.threads[i];
    if (lane.status != UsmoeEmuThread::AtMma || lane.waitSite != t.waitSite)
      return; // not everyone is there yet (deadlocks are found later)
  }
  float a[16][16], b[16][8], c[16][8];
  for (uint32_t lane = 0; lane < kWarpSize; ++lane) {
    const float *in = block.threads[first + lane].mmaIn;
    uint32_t g = lane / 4, q = lane % 4;
    for (uint32_t r = 0; r < 4; ++r)
      for (uint32_t j = 0; j < 2; ++j)
        a[g + 8 * (r & 1)][2 * q + j + 8 * (r >> 1)] = in[2 * r + j];
    for (uint32_t r = 0; r < 2; ++r)
      for (uint32_t j = 0; j < 2; ++j) {
        b[2 * q + j + 8 * r][g] = in[8 + 2 * r + j];
        c[g + 8 * r][2 * q + j] = in[12 + 2 * r + j];
      }
  }
  for (uint32_t lane = 0; lane < kWarpSize; ++lane) {
    UsmoeEmuThread &l = block.threads[first + lane];
    uint32_t g = lane / 4, q = lane % 4;
    for (uint32_t r = 0; r < 2; ++r)
      for (uint32_t j = 0; j < 2; ++j) {
        uint32_t row = g + 8 * r, col = 2 * q + j;
        float sum = c[row][col];
        for (uint32_t k = 0; k < 16; ++k)
          sum += a[row][k] * b[k][col];
        l.mmaOut[2 * r + j] = sum;
      }
  }
  for (uint32_t i = first; i < first + kWarpSize; ++i)
    block.threads[i].status = UsmoeEmuThread::Ready;
}

/// Whether every lane of `t`'s warp below `last` waits where `t` does (a
/// shuffle or an mma.sync); reports `what` naming the first that does not.
bool warpAllAt(Block &block, const UsmoeEmuThread &t, uint32_t last,
               const char *what) {
  uint32_t first = t.linear / kWarpSize * kWarpSize;
  last = std::min<uint32_t>(last, uint32_t(block.threads.size()));
  for (uint32_t i = first; i < last; ++i) {
    const UsmoeEmuThread &other = block.threads[i];
    if (other.status == t.status && other.waitSite == t.waitSite)
      continue;
    char who[160], detail[512];
    describeThread(who, sizeof(who), t);
    format(detail, sizeof(detail), "%s waits for lane %u, which %s%s%s", who,
           i - first, statusName(other), other.waitSite ? " at " : "",
           other.waitSite ? other.waitSite : "");
    failLaunch(*block.launch, what, t.waitSite, detail);
    return false;
  }
  return true;
}

/// Explains why no thread of the block can run; returns false after
/// reporting (a deadlock), true when a barrier can be released.
bool checkStuckBlock(Block &block) {
  Launch &launch = *block.launch;
  const UsmoeEmuThread *atBarrier = nullptr, *exited = nullptr;
  for (const UsmoeEmuThread &t : block.threads) {
    if (t.status == UsmoeEmuThread::AtShuffle) {
      uint32_t first = t.linear / kWarpSize * kWarpSize;
      uint32_t lanes = uint32_t(std::max(t.shflWidth, 1));
      if (!warpAllAt(block, t, std::min(first + lanes, first + kWarpSize),
                     "shuffle reached by part of a warp (deadlock)"))
        return false;
    }
    if (t.status == UsmoeEmuThread::AtMma &&
        !warpAllAt(block, t, t.linear / kWarpSize * kWarpSize + kWarpSize,
                   "mma.sync reached by part of a warp (deadlock)"))
      return false;
    if (t.status == UsmoeEmuThread::AtBarrier) {
      if (atBarrier && atBarrier->waitSite != t.waitSite) {
        char a[160], b[160], detail[800];
        describeThread(a, sizeof(a), *atBarrier);
        describeThread(b, sizeof(b), t);
        format(detail, sizeof(detail), "%s waits there while %s waits at %s", a,
               b, orUnknown(t.waitSite));
        failLaunch(launch, "threads of a block wait at different barriers",
                   atBarrier->waitSite, detail);
        return false;
      }
      atBarrier = &t;
    } else if (t.status == UsmoeEmuThread::Done && !exited) {
      exited = &t;
    }
  }
  if (atBarrier && exited) {
    size_t waiting = 0;
    for (const UsmoeEmuThread &t : block.threads)
      waiting += t.status == UsmoeEmuThread::AtBarrier;
    char who[160], detail[400];
    describeThread(who, sizeof(who), *exited);
    format(detail, sizeof(detail),
           "%zu of %zu threads wait there but %s has exited without reaching "
           "it (a barrier in divergent control flow)",
           waiting, block.threads.size(), who);
    failLaunch(launch, "barrier reached by part of the block",
               atBarrier->waitSite, detail);
    return false;
  }
  return true;
}

/// Runs one block to completion; false when it failed.
bool runBlock(Block &block) {
  State &s = state();
  Launch &launch = *block.launch;
  size_t n = block.threads.size();
  while (s.fibers.size() < n)
    s.fibers.push_back(std::make_unique<Fiber>());
  for (size_t i = 0; i < n; ++i) {
    UsmoeEmuThread &t = block.threads[i];
    t.fiber = s.fibers[i].get();
    t.status = UsmoeEmuThread::Ready;
    t.waitSite = nullptr;
    t.accessesSinceWait = 0;
    t.fiber->start(threadMain, &t);
  }
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  if (launch.randomize)
    std::shuffle(order.begin(), order.end(), launch.rng);
  block.blockStamp = block.stamp = ++s.stamp;
  for (;;) {
    bool ran = false;
    for (uint32_t index : order) {
      UsmoeEmuThread &t = block.threads[index];
      if (t.status != UsmoeEmuThread::Ready)
        continue;
      ran = true;
      t.fiber->resume();
      ++s.switches;
      if (launch.aborted)
        return false;
      if (t.status == UsmoeEmuThread::AtShuffle)
        tryShuffle(block, t);
      else if (t.status == UsmoeEmuThread::AtMma)
        tryMma(block, t);
      if (launch.aborted)
        return false;
    }
    if (ran)
      continue;
    bool allDone = std::all_of(block.threads.begin(), block.threads.end(),
                               [](const UsmoeEmuThread &t) {
                                 return t.status == UsmoeEmuThread::Done;
                               });
    if (allDone)
      return true;
    if (!checkStuckBlock(block))
      return false;
    // Everyone waits at the same barrier: release it.
    block.stamp = ++s.stamp;
    for (UsmoeEmuThread &t : block.threads)
      t.status = UsmoeEmuThread::Ready;
    if (launch.randomize)
      std::shuffle(order.begin(), order.end(), launch.rng);
  }
}

/// Checks the launch shape against the hardware; false after reporting.
bool checkShape(const Launch &launch, int64_t sharedBytes) {
  static const char *axis[3] = {"x", "y", "z"};
  char detail[256];
  detail[0] = 0;
  for (int d = 0; d < 3 && !detail[0]; ++d) {
    if (launch.blockDim[d] < 1 || launch.blockDim[d] > kMaxBlockDim[d])
      format(detail, sizeof(detail),
             "block.%s = %" PRId64 " (limit %" PRId64 ")", axis[d],
             launch.blockDim[d], kMaxBlockDim[d]);
    else if (launch.grid[d] < 1 || launch.grid[d] > kMaxGridDim[d])
      format(detail, sizeof(detail),
             "grid.%s = %" PRId64 " (must be in [1, %" PRId64 "])", axis[d],
             launch.grid[d], kMaxGridDim[d]);
  }
  int64_t threads =
      launch.blockDim[0] * launch.blockDim[1] * launch.blockDim[2];
  if (!detail[0] && threads > kMaxThreadsPerBlock)
    format(detail, sizeof(detail),
           "%" PRId64 " threads per block (limit %" PRId64 ")", threads,
           kMaxThreadsPerBlock);
  if (!detail[0] && (sharedBytes < 0 || sharedBytes > kMaxStaticSharedBytes))
    format(detail, sizeof(detail),
           "%" PRId64 " bytes of static shared memory (limit %" PRId64 ")",
           sharedBytes, kMaxStaticSharedBytes);
  if (!detail[0])
    return true;
  failLaunch(launch, "launch beyond hardware limits", launch.site, detail);
  return false;
}

/// The schedule seed: USMOE_EMU_SEED, unset or empty for in-order runs.
bool scheduleSeed(uint64_t &seed) {
  const char *value = std::getenv("USMOE_EMU_SEED");
  if (!value || !*value)
    return false;
  seed = std::strtoull(value, nullptr, 0);
  return true;
}
} // namespace

extern "C" {

namespace {
/// The launch itself; false when it failed.
bool runLaunch(UsmoeEmuKernel kernel, void *args, const char *name,
               const char *site, int64_t gridX, int64_t gridY, int64_t gridZ,
               int64_t blockX, int64_t blockY, int64_t blockZ,
               int64_t sharedBytes) {
  State &s = state();
  Launch launch;
  launch.kernel = kernel;
  launch.args = args;
  launch.name = name ? name : "<kernel>";
  launch.site = site;
  int64_t grid[3] = {gridX, gridY, gridZ}, dims[3] = {blockX, blockY, blockZ};
  std::copy(grid, grid + 3, launch.grid);
  std::copy(dims, dims + 3, launch.blockDim);
  if (!checkShape(launch, sharedBytes))
    return false;
  ++s.launches;
  uint64_t seed = 0;
  launch.randomize = scheduleSeed(seed);
  if (const char *limit = std::getenv("USMOE_EMU_SPIN_LIMIT"); limit && *limit)
    launch.spinLimit = std::max<int64_t>(1, std::strtoll(limit, nullptr, 0));
  launch.rng.seed(seed ^ uint64_t(s.launches) * 0x9e3779b97f4a7c15ull);
  launch.blockThreads = uint32_t(blockX * blockY * blockZ);
  s.shadow.trim();
  launch.launchStamp = s.stamp + 1;
  if (s.sharedMemory.size() < size_t(sharedBytes) + 16)
    s.sharedMemory.resize(size_t(sharedBytes) + 16);
  char *shared = reinterpret_cast<char *>(
      (reinterpret_cast<uintptr_t>(s.sharedMemory.data()) + 15) &
      ~uintptr_t(15));

  int64_t blocks = gridX * gridY * gridZ;
  std::vector<int64_t> blockOrder(static_cast<size_t>(blocks));
  std::iota(blockOrder.begin(), blockOrder.end(), int64_t(0));
  if (launch.randomize)
    std::shuffle(blockOrder.begin(), blockOrder.end(), launch.rng);

  Block block;
  block.launch = &launch;
  block.shared = shared;
  block.threads.resize(launch.blockThreads);
  for (uint32_t i = 0; i < launch.blockThreads; ++i) {
    UsmoeEmuThread &t = block.threads[i];
    t.block = &block;
    t.linear = i;
    setCoordinates(t.tid, i, launch.blockDim);
  }
  for (int64_t linear : blockOrder) {
    block.linear = uint32_t(linear);
    setCoordinates(block.id, linear, launch.grid);
    ++s.blocks;
    if (!runBlock(block))
      return false;
  }
  return true;
}
} // namespace

void usmoe_emu_launch(UsmoeEmuKernel kernel, void *args, const char *name,
                      const char *site, int64_t gridX, int64_t gridY,
                      int64_t gridZ, int64_t blockX, int64_t blockY,
                      int64_t blockZ, int64_t sharedBytes) {
  State &s = state();
  if (s.failed)
    return; // a failed launch leaves its outputs unspecified: stop here
  bool ok = runLaunch(kernel, args, name, site, gridX, gridY, gridZ, blockX,
                      blockY, blockZ, sharedBytes);
  // Everything of the launch is destroyed by now: nothing to unwind.
  if (!ok && s.guard)
    std::longjmp(*s.guard, 1);
}

int usmoe_emu_guarded_call(void (*function)(void **), void **args) {
  State &s = state();
  std::jmp_buf here;
  std::jmp_buf *outer = s.guard;
  s.guard = &here;
  if (setjmp(here) != 0) {
    s.guard = outer;
    return 1;
  }
  function(args);
  s.guard = outer;
  return 0;
}

int64_t usmoe_emu_id(UsmoeEmuThread *t, int32_t kind) {
  const Block &b = *t->block;
  const Launch &l = *b.launch;
  if (kind >= USMOE_EMU_THREAD_X && kind < USMOE_EMU_THREAD_X + 3)
    return t->tid[kind - USMOE_EMU_THREAD_X];
  if (kind >= USMOE_EMU_BLOCK_X && kind < USMOE_EMU_BLOCK_X + 3)
    return b.id[kind - USMOE_EMU_BLOCK_X];
  if (kind >= USMOE_EMU_BLOCK_DIM_X && kind < USMOE_EMU_BLOCK_DIM_X + 3)
    return l.blockDim[kind - USMOE_EMU_BLOCK_DIM_X];
  if (kind >= USMOE_EMU_GRID_DIM_X && kind < USMOE_EMU_GRID_DIM_X + 3)
    return l.grid[kind - USMOE_EMU_GRID_DIM_X];
  return t->linear % kWarpSize; // USMOE_EMU_LANE
}

void *usmoe_emu_shared_memory(UsmoeEmuThread *t) { return t->block->shared; }

void usmoe_emu_barrier(UsmoeEmuThread *t, const char *site) {
  t->status = UsmoeEmuThread::AtBarrier;
  t->waitSite = site;
  t->fiber->suspend();
  t->waitSite = nullptr;
  t->accessesSinceWait = 0;
}

int64_t usmoe_emu_shuffle(UsmoeEmuThread *t, int32_t value, int32_t offset,
                          int32_t width, int32_t mode, const char *site) {
  t->status = UsmoeEmuThread::AtShuffle;
  t->waitSite = site;
  t->shflValue = value;
  t->shflOffset = offset;
  t->shflWidth = width;
  t->shflMode = mode;
  t->fiber->suspend();
  t->waitSite = nullptr;
  t->accessesSinceWait = 0;
  return t->shflResult;
}

void usmoe_emu_mma_operand(UsmoeEmuThread *t, int32_t index, float value) {
  t->mmaIn[index & 15] = value;
}

void usmoe_emu_mma_sync(UsmoeEmuThread *t, const char *site) {
  t->status = UsmoeEmuThread::AtMma;
  t->waitSite = site;
  t->fiber->suspend();
  t->waitSite = nullptr;
  t->accessesSinceWait = 0;
}

float usmoe_emu_mma_result(UsmoeEmuThread *t, int32_t index) {
  return t->mmaOut[index & 3];
}

void usmoe_emu_access(UsmoeEmuThread *t, int64_t address, int64_t bytes,
                      int32_t kind, const char *site) {
  const Block &b = *t->block;
  const Launch &l = *b.launch;
  // Blocks run one after another: a thread waiting for another block (or
  // for a thread that only runs once it yields) would spin forever.
  if (++t->accessesSinceWait > l.spinLimit) {
    char detail[200];
    format(detail, sizeof(detail),
           "%" PRId64 " memory accesses without reaching a barrier or a "
           "shuffle: a wait for another block never ends on the emulator "
           "(USMOE_EMU_SPIN_LIMIT raises the limit)",
           l.spinLimit);
    failThread(t, "thread spins without progress", site, detail);
  }
  AccessContext ctx{b.linear * l.blockThreads + t->linear + 1,
                    b.linear,
                    l.blockThreads,
                    b.stamp,
                    l.launchStamp,
                    b.blockStamp,
                    site};
  Hazard h =
      state().shadow.access(uint64_t(address), uint64_t(bytes), kind, ctx);
  if (h.kind == Hazard::None)
    return;
  const char *space = (kind & USMOE_EMU_SHARED) ? "shared" : "global";
  char what[96], detail[700];
  if (h.kind == Hazard::UninitializedRead) {
    format(what, sizeof(what), "read of uninitialized %s memory", space);
    format(detail, sizeof(detail),
           "no thread of the block wrote address 0x%" PRIx64 " before",
           uint64_t(address));
    failThread(t, what, site, detail);
  }
  const char *mine = (kind & USMOE_EMU_ATOMIC)  ? "atomic"
                     : (kind & USMOE_EMU_WRITE) ? "write"
                                                : "read";
  const char *theirs = !h.otherWasWrite   ? "a read"
                       : h.otherWasAtomic ? "an atomic"
                                          : "a write";
  // The other thread and block, as coordinates.
  uint32_t otherLinear = h.other.thread - 1;
  int64_t otherTid[3], otherBid[3];
  setCoordinates(otherTid, otherLinear % l.blockThreads, l.blockDim);
  setCoordinates(otherBid, otherLinear / l.blockThreads, l.grid);
  char who[160];
  describeThread(who, sizeof(who), otherTid, otherBid);
  format(what, sizeof(what), "data race on %s memory", space);
  format(detail, sizeof(detail),
         "this %s conflicts with %s by %s at %s, with no barrier between "
         "them",
         mine, theirs, who, orUnknown(h.other.site));
  failThread(t, what, site, detail);
}

void usmoe_emu_out_of_bounds(UsmoeEmuThread *t, int64_t index, int64_t size,
                             int64_t dim, const char *site) {
  char detail[200];
  format(detail, sizeof(detail),
         "index %" PRId64 " of dimension %" PRId64 " is outside [0, %" PRId64
         ")",
         index, dim, size);
  failThread(t, "out-of-bounds access", site, detail);
}

void usmoe_emu_poison(int64_t address, int64_t bytes) {
  if (address && bytes > 0)
    std::memset(reinterpret_cast<void *>(address), kUsmoeEmuPoisonByte,
                static_cast<size_t>(bytes));
}
void usmoe_emu_set_print_errors(int print) { state().printErrors = print; }
int usmoe_emu_failed(void) { return state().failed; }
const char *usmoe_emu_last_error(void) { return state().error.c_str(); }
void usmoe_emu_clear_error(void) {
  state().failed = false;
  state().error.clear();
}
void usmoe_emu_counters(int64_t *launches, int64_t *blocks, int64_t *switches) {
  *launches = state().launches;
  *blocks = state().blocks;
  *switches = state().switches;
}

} // extern "C"
