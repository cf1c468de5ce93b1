//===- Shadow.h - race and uninitialized-read tracking ----------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// One shadow cell per byte of memory a kernel touches, in lazily allocated
// pages: the last write and the last two readers, each as (thread, stamp,
// site). A stamp numbers one barrier interval of one block; launches are
// told apart by the first stamp they used, so stale cells need no clearing.
//
// Two accesses race when they come from different threads, at least one
// writes, they are not both atomic, and nothing orders them: in global memory,
// threads of different blocks are never ordered within a launch, threads of
// one block are ordered by a barrier between them; workgroup memory is per
// block. Atomics do not race with each other; shuffles order nothing.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_LIB_RUNTIME_EMULATOR_SHADOW_H
#define USMOE_LIB_RUNTIME_EMULATOR_SHADOW_H

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

namespace usmoe::emu {

/// Who accessed a byte and when (thread 0: nobody).
struct AccessRecord {
  uint32_t thread = 0; ///< global thread index + 1
  uint32_t stamp = 0;
  const char *site = nullptr;
};

/// Where the current access happens, for the checks.
struct AccessContext {
  uint32_t thread; ///< global thread index + 1
  uint32_t block;  ///< linear block index
  uint32_t blockThreads;
  uint32_t stamp;       ///< current barrier interval of the block
  uint32_t launchStamp; ///< first stamp of the launch
  uint32_t blockStamp;  ///< first stamp of the block
  const char *site;
};

/// A detected problem: what and the other access involved (if any).
struct Hazard {
  enum Kind { None, Race, UninitializedRead } kind = None;
  bool otherWasWrite = false;
  bool otherWasAtomic = false;
  AccessRecord other;
};

class Shadow {
public:
  /// Checks and records an access of `bytes` at `address` (`kind`: the
  /// UsmoeEmuAccess flags). Returns the first hazard found.
  Hazard access(uint64_t address, uint64_t bytes, int kind,
                const AccessContext &ctx);
  /// Drops every page when many accumulated (launches order all earlier
  /// accesses, so nothing is lost).
  void trim();

private:
  struct Cell {
    AccessRecord write;
    bool writeAtomic = false;
    AccessRecord read;                              ///< the last reader
    uint32_t otherReader = 0, otherReaderStamp = 0; ///< the one before
  };
  static constexpr uint64_t kPageBits = 12;
  Cell *cell(uint64_t address);

  std::unordered_map<uint64_t, std::unique_ptr<Cell[]>> pages;
  uint64_t cachedPage = ~uint64_t(0);
  Cell *cachedCells = nullptr;
};

} // namespace usmoe::emu

#endif // USMOE_LIB_RUNTIME_EMULATOR_SHADOW_H
