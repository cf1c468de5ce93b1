//===- JitHeap.h - malloc/free for JIT-compiled code ------------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Compiled routers and layers allocate their results and temporaries with
// malloc, megabytes per call at serving sizes. glibc serves those with fresh
// mmap'ed pages, so every call paid for page faults and zeroing (a quarter
// of a 16384 x 256 router's time, measured with perf). The JIT resolves the
// code's malloc and free to these: blocks of at least kCachedBytes are kept
// when freed and handed out again for requests they fit, a bounded cache.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_PYTHON_JITHEAP_H
#define USMOE_PYTHON_JITHEAP_H

#include <cstddef>

extern "C" {
/// malloc for JIT-compiled code (and results handed to Python).
void *usmoeJitMalloc(size_t bytes);
/// free for anything usmoeJitMalloc returned, or any malloc'ed pointer.
void usmoeJitFree(void *pointer);
}

namespace usmoe_py {

/// What the heap has done with blocks of at least its caching size, since
/// the process started: served from a kept block, or fresh from malloc; and
/// the bytes kept for reuse now.
struct JitHeapStats {
  size_t reusedBlocks = 0, freshBlocks = 0, keptBytes = 0;
};

JitHeapStats jitHeapStats();

} // namespace usmoe_py

#endif // USMOE_PYTHON_JITHEAP_H
