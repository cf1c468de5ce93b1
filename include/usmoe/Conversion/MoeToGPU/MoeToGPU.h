//===- MoeToGPU.h - lower fused routing to GPU kernels ----------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_CONVERSION_MOETOGPU_MOETOGPU_H
#define USMOE_CONVERSION_MOETOGPU_MOETOGPU_H

#include "mlir/Pass/Pass.h"

#include <cstdint>

namespace mlir::usmoe {

/// Elements of a selection set per block when the GPU select spreads a set
/// over blocks: ceil(count / chunk) blocks (4096 = 4 keys per thread of a
/// 1024-thread block; 256 blocks for a 16384 x 64 sequence, about two per SM
/// of an H100).
inline constexpr int64_t kDefaultSelectChunk = 4096;
/// A set spreads only when it has more elements than this and there are
/// fewer than kSelectSpreadMaxSets sets: the spread costs four more
/// launches (about 8 us), and enough sets fill the chip with a block each
/// (the cost model, docs/gpu-performance.md). Also the keys the one-block
/// select keeps in shared memory (32 KB): a set that stays on one block by
/// default computes each score once; above this the one block recomputes
/// them in three passes, which costs more than the launches (Unified
/// 64 x 256: 34 us on one block, 22 spread, with the arithmetic counted).
inline constexpr int64_t kDefaultSelectSpread = 8192;
inline constexpr int64_t kSelectSpreadMaxSets = 128;

/// Unit attribute convert-moe-to-gpu puts on a module whose host code reads
/// device memory on the host (a plan's row count read back): such code
/// cannot run as a stream call (usmoe_rt_mgpu_begin_stream_call), whose
/// allocations are device memory the host cannot read.
inline constexpr const char *kHostReadsDeviceAttr = "usmoe.host_reads_device";

#define GEN_PASS_DECL_CONVERTMOETOGPUPASS
#define GEN_PASS_DECL_USMOEGPUCOSTREPORTPASS
#define GEN_PASS_DECL_USMOEREQUIRECUDATOOLKITPASS
#define GEN_PASS_DECL_USMOECHECKGPUTARGETPASS
#define GEN_PASS_DECL_USMOEHOSTSHAREDALLOCSPASS
#define GEN_PASS_DECL_USMOEBF16MMASYNCTONVVMPASS
#include "usmoe/Conversion/Passes.h.inc"

} // namespace mlir::usmoe

#endif // USMOE_CONVERSION_MOETOGPU_MOETOGPU_H
