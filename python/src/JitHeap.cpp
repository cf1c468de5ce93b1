//===- JitHeap.cpp - malloc/free for JIT-compiled code --------------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "JitHeap.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>

namespace {

/// Smaller blocks go straight to malloc (its bins reuse them already).
/// Larger ones glibc maps fresh (from 128 KB) or gives back to the system
/// once a free leaves more than its trim threshold at the heap's top, so a
/// repeated call's buffers were paged in anew every call: a 1 x 16384 x 8,
/// k = 8 route's lists and plan (four 512 KB buffers) took 480 page faults,
/// 1.2 ms of its 2.5 ms, when only blocks of 1 MB were kept.
constexpr size_t kCachedBytes = size_t(64) << 10;
/// At most this much freed memory is kept for reuse.
constexpr size_t kCacheLimit = size_t(512) << 20;

class Heap {
public:
  void *allocate(size_t bytes) {
    if (bytes < kCachedBytes)
      return std::malloc(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex);
      // The smallest kept block that fits, if it is not more than twice the
      // request (a huge block stays for a huge request).
      auto found = kept.lower_bound(bytes);
      if (found != kept.end() && found->first <= 2 * bytes) {
        void *block = found->second;
        keptBytes -= found->first;
        live[block] = found->first;
        kept.erase(found);
        ++reusedBlocks;
        return block;
      }
    }
    void *block = std::malloc(bytes);
    if (block) {
      std::lock_guard<std::mutex> lock(mutex);
      live[block] = bytes;
      ++freshBlocks;
    }
    return block;
  }

  usmoe_py::JitHeapStats stats() {
    std::lock_guard<std::mutex> lock(mutex);
    return {reusedBlocks, freshBlocks, keptBytes};
  }

  void release(void *pointer) {
    if (!pointer)
      return;
    {
      std::lock_guard<std::mutex> lock(mutex);
      auto found = live.find(pointer);
      if (found != live.end()) {
        size_t bytes = found->second;
        live.erase(found);
        // Keep it, making room by dropping the largest kept blocks.
        while (!kept.empty() && keptBytes + bytes > kCacheLimit) {
          auto largest = std::prev(kept.end());
          keptBytes -= largest->first;
          std::free(largest->second);
          kept.erase(largest);
        }
        if (bytes <= kCacheLimit) {
          kept.emplace(bytes, pointer);
          keptBytes += bytes;
          return;
        }
      }
    }
    std::free(pointer);
  }

private:
  std::mutex mutex;
  std::unordered_map<void *, size_t> live; // cacheable blocks in use
  std::multimap<size_t, void *> kept;      // freed blocks by size
  size_t keptBytes = 0;
  size_t reusedBlocks = 0, freshBlocks = 0;
};

Heap &heap() {
  // Never destroyed: results may be freed after static destructors run.
  static Heap *instance = new Heap;
  return *instance;
}

} // namespace

extern "C" void *usmoeJitMalloc(size_t bytes) { return heap().allocate(bytes); }

extern "C" void usmoeJitFree(void *pointer) { heap().release(pointer); }

usmoe_py::JitHeapStats usmoe_py::jitHeapStats() { return heap().stats(); }
