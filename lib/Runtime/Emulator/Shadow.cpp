//===- Shadow.cpp - race and uninitialized-read tracking ------------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "Shadow.h"

#include "usmoe/Runtime/GpuEmulator.h"

using namespace usmoe::emu;

namespace {
/// Whether a recorded access by another thread is unordered with the current
/// one (stale records from earlier launches or blocks are ordered).
bool unordered(uint32_t thread, uint32_t stamp, const AccessContext &ctx,
               bool shared) {
  if (thread == 0 || thread == ctx.thread)
    return false;
  if (shared)
    return stamp >= ctx.blockStamp && stamp == ctx.stamp;
  if (stamp < ctx.launchStamp)
    return false;
  uint32_t block = (thread - 1) / ctx.blockThreads;
  return block != ctx.block || stamp == ctx.stamp;
}
} // namespace

Shadow::Cell *Shadow::cell(uint64_t address) {
  uint64_t page = address >> kPageBits;
  if (page != cachedPage) {
    std::unique_ptr<Cell[]> &cells = pages[page];
    if (!cells)
      cells = std::make_unique<Cell[]>(size_t(1) << kPageBits);
    cachedPage = page;
    cachedCells = cells.get();
  }
  return &cachedCells[address & ((uint64_t(1) << kPageBits) - 1)];
}

Hazard Shadow::access(uint64_t address, uint64_t bytes, int kind,
                      const AccessContext &ctx) {
  bool shared = kind & USMOE_EMU_SHARED;
  bool atomic = kind & USMOE_EMU_ATOMIC;
  bool plainWrite = (kind & USMOE_EMU_WRITE) && !atomic;
  bool plainRead = (kind & USMOE_EMU_READ) && !atomic;
  Hazard hazard;
  for (uint64_t i = 0; i < bytes; ++i) {
    Cell &c = *cell(address + i);
    if (hazard.kind == Hazard::None) {
      // A conflict needs a write on one side and not atomics on both.
      bool otherWrite = unordered(c.write.thread, c.write.stamp, ctx, shared);
      bool otherRead = unordered(c.read.thread, c.read.stamp, ctx, shared);
      bool olderRead =
          unordered(c.otherReader, c.otherReaderStamp, ctx, shared);
      if (otherWrite && !(atomic && c.writeAtomic)) {
        hazard = {Hazard::Race, true, c.writeAtomic, c.write};
      } else if ((plainWrite || atomic) && otherRead) {
        hazard = {Hazard::Race, false, false, c.read};
      } else if ((plainWrite || atomic) && olderRead) {
        hazard = {Hazard::Race,
                  false,
                  false,
                  {c.otherReader, c.otherReaderStamp, nullptr}};
      } else if (shared && !plainWrite &&
                 !(c.write.thread != 0 && c.write.stamp >= ctx.blockStamp)) {
        hazard.kind = Hazard::UninitializedRead;
      }
    }
    if (kind & USMOE_EMU_WRITE) {
      c.write = {ctx.thread, ctx.stamp, ctx.site};
      c.writeAtomic = atomic;
    }
    if (plainRead) {
      if (c.read.thread != ctx.thread) {
        c.otherReader = c.read.thread;
        c.otherReaderStamp = c.read.stamp;
      }
      c.read = {ctx.thread, ctx.stamp, ctx.site};
    }
  }
  return hazard;
}

void Shadow::trim() {
  if (pages.size() > 512) {
    pages.clear();
    cachedPage = ~uint64_t(0);
    cachedCells = nullptr;
  }
}
