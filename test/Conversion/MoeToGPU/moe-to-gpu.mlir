// RUN: usmoe-opt %s -convert-moe-to-gpu -split-input-file -verify-diagnostics | FileCheck %s

// A Token Choice router becomes a launch of a warp-per-token kernel: 4 rows
// per 128-thread block, skipped for an empty input.
// CHECK: module attributes {gpu.container_module, usmoe.kernels = {route_token_0 = #moe.kernel<kind = "route_token", args = [memref<?x?x64xbf16>, memref<?x?x64xf32>, memref<?x?x64xi1>], block = [128, 1, 1], grid = "ceildiv(B * T, 4)", launches = "1", bytes_read = "B * T * E * 2", bytes_written = "B * T * E * 5", floor_bytes = "B * T * E * 7", info = {experts = 64 : i64, k = 8 : i64, lists = false, renormalize = true, rows_per_block = 4 : i64}>}}
// CHECK-LABEL: func.func @router
// CHECK: %[[L:.*]] = bufferization.to_buffer %{{.*}} read_only
// CHECK: %[[G:.*]] = memref.alloc(%{{.*}}, %{{.*}}) : memref<?x?x64xf32>
// CHECK: %[[M:.*]] = memref.alloc(%{{.*}}, %{{.*}}) : memref<?x?x64xi1>
// CHECK: %[[BLOCKS:.*]] = arith.ceildivui %{{.*}}, %c4
// CHECK: scf.if
// CHECK-NEXT: gpu.launch_func @usmoe_kernels::@route_token_0 blocks in (%[[BLOCKS]], %{{.*}}, %{{.*}}) threads in (%c128, %{{.*}}, %{{.*}}) args(%[[L]] : memref<?x?x64xbf16>, %[[G]] : memref<?x?x64xf32>, %[[M]] : memref<?x?x64xi1>)
// CHECK: gpu.module @usmoe_kernels
// CHECK: gpu.func @route_token_0(
// CHECK-SAME: kernel attributes {known_block_size = array<i32: 128, 1, 1>}
// Row max: a butterfly of five xor shuffles.
// CHECK-COUNT-5: gpu.shuffle  xor %{{.*}} : f32
// The row sum in SoftmaxSum's integer units (2^56 for E = 64): an i64
// butterfly, two 32-bit shuffles a step, every lane with the same total; no
// float sum and no broadcast.
// CHECK: %[[UNIT:.*]] = arith.constant 7.2057594E+16 : f32
// CHECK: math.exp
// CHECK: arith.mulf %{{.*}}, %[[UNIT]] : f32
// CHECK: arith.fptosi %{{.*}} : f32 to i64
// CHECK-COUNT-10: gpu.shuffle  xor %{{.*}} : i32
// CHECK: arith.sitofp %{{.*}} : i64 to f32
// CHECK-NOT: gpu.shuffle  idx
// CHECK: arith.divf
// The k picks: a warp arg-max over (key, index) pairs.
// CHECK: scf.for
// CHECK-COUNT-10: gpu.shuffle  xor %{{.*}} : i32
// CHECK: gpu.return
func.func @router(%l: tensor<?x?x64xbf16>) -> (tensor<?x?x64xf32>, tensor<?x?x64xi1>) {
  %g, %m = moe.route #moe.token<k = 8, renormalize> %l : tensor<?x?x64xbf16>
  return %g, %m : tensor<?x?x64xf32>, tensor<?x?x64xi1>
}

// -----

// E = 60 (a multiple of 4, not of 128): one 4-wide vector load per lane,
// clamped to the last group and masked; stores past E are guarded.
// CHECK-LABEL: func.func @uneven
// CHECK: gpu.func @route_token_0(
// CHECK-SAME: memref<2x?x60xf32>
// CHECK: %[[AT:.*]] = arith.minui %{{.*}}, %c56
// CHECK: vector.load %{{.*}}[%{{.*}}, %{{.*}}, %[[AT]]] {alignment = 16 : i64} : memref<2x?x60xf32>, vector<4xf32>
// CHECK: scf.if
// CHECK: memref.store
func.func @uneven(%l: tensor<2x?x60xf32>) -> tensor<2x?x60xf32> {
  %g, %m = moe.route #moe.token<k = 2> %l : tensor<2x?x60xf32>
  return %g : tensor<2x?x60xf32>
}

// -----

// E = 6 is not a multiple of 4: scalar loads, lane l holding l, l + 32, ...
// CHECK-LABEL: func.func @odd
// CHECK: gpu.func @route_token_0(
// CHECK: arith.minui %{{.*}}, %c5
// CHECK-NOT: vector.load
// CHECK: gpu.return
func.func @odd(%l: tensor<1x?x6xf16>) -> tensor<1x?x6xf32> {
  %g, %m = moe.route #moe.token<k = 2> %l : tensor<1x?x6xf16>
  return %g : tensor<1x?x6xf32>
}

// -----

func.func @too_many_experts(%l: tensor<1x?x4096xf32>) -> tensor<1x?x4096xf32> {
  // expected-error @+1 {{token routing on the GPU supports up to 2048 experts, got 4096}}
  %g, %m = moe.route #moe.token<k = 2> %l : tensor<1x?x4096xf32>
  return %g : tensor<1x?x4096xf32>
}

// -----

// moe.topk_list: one warp per token like Token Choice; keys are 0 where the
// mask is off, k arg-max rounds, lane 0 writes each pick or the (-1, 0) pad.
// CHECK-LABEL: func.func @listed
// CHECK: %[[IDS:.*]] = memref.alloc(%{{.*}}) : memref<?x3xi32>
// CHECK: %[[W:.*]] = memref.alloc(%{{.*}}) : memref<?x3xf32>
// CHECK: gpu.launch_func @usmoe_kernels::@topk_list_1 blocks in (%{{.*}}) threads in (%c128{{.*}}, %{{.*}}, %{{.*}}) args(%{{.*}} : memref<?x?x40xf32>, %{{.*}} : memref<?x?x40xi1>, %[[IDS]] : memref<?x3xi32>, %[[W]] : memref<?x3xf32>)
// CHECK: gpu.func @topk_list_1(
// CHECK-SAME: kernel attributes {known_block_size = array<i32: 128, 1, 1>}
// CHECK: memref.load %{{.*}} : memref<?x?x40xi1>
// CHECK: scf.for
// CHECK-COUNT-10: gpu.shuffle  xor %{{.*}} : i32
// CHECK: gpu.shuffle  idx %{{.*}} : f32
// CHECK: scf.if
// CHECK: memref.store %{{.*}} : memref<?x3xi32>
// CHECK: memref.store %{{.*}} : memref<?x3xf32>
func.func @listed(%l: tensor<?x?x40xf32>) -> (tensor<?x3xi32>, tensor<?x3xf32>) {
  %g, %m = moe.route #moe.unified<k = 1.5> %l : tensor<?x?x40xf32>
  %i, %w = moe.topk_list %g, %m k = 3 : tensor<?x?x40xf32>
  return %i, %w : tensor<?x3xi32>, tensor<?x3xf32>
}

// -----

func.func @too_many_experts_unified(%l: tensor<1x?x4096xf32>) -> tensor<1x?x4096xf32> {
  // expected-error @+1 {{routing on the GPU supports up to 2048 experts, got 4096}}
  %g, %m = moe.route #moe.unified<k = 1.0> %l : tensor<1x?x4096xf32>
  return %g : tensor<1x?x4096xf32>
}

// -----

// The plan's tile kernels hold a 128-bit row set per expert in shared memory.
func.func @too_many_experts_plan(%g: tensor<1x?x4096xf32>, %m: tensor<1x?x4096xi1>) -> tensor<?xi32> {
  // expected-error @+1 {{moe.plan on the GPU supports up to 2048 experts, got 4096}}
  %o, %i, %w = moe.plan %g, %m : tensor<1x?x4096xf32>
  return %i : tensor<?xi32>
}

// -----

func.func @too_many_experts_to_list(%g: tensor<1x?x4096xf32>, %m: tensor<1x?x4096xi1>) -> tensor<?x2xi32> {
  // expected-error @+1 {{listing top-k experts on the GPU supports up to 2048 experts, got 4096}}
  %i, %w = moe.topk_list %g, %m k = 2 : tensor<1x?x4096xf32>
  return %i : tensor<?x2xi32>
}

// -----

func.func @not_yet(%l: tensor<1x?x8xf32>) -> tensor<1x?x8xf32> {
  // Unfused score ops have no GPU kernel (moe-fuse-routing runs first in
  // usmoe-to-nvvm, so only scores used on their own reach this).
  // expected-error @+1 {{is not supported on the GPU path yet (usmoe-to-cpu supports every moe op)}}
  %p = moe.token_softmax %l : tensor<1x?x8xf32>
  return %p : tensor<1x?x8xf32>
}

// -----

func.func @combine_without_offsets(%x: tensor<?x16xf32>, %i: tensor<?xi32>, %w: tensor<?xf32>, %init: tensor<?x16xf32>) -> tensor<?x16xf32> {
  // expected-error @+1 {{needs the expert_offsets operand on the GPU path}}
  %y = moe.combine %x, %i, %w into %init : tensor<?x16xf32>, tensor<?xi32>, tensor<?xf32> into tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// The plan: count over tiles of 128 rows (a thread per row sets the row's
// bit in each selected expert's bitset in shared memory; the counts are
// popcounts), scan (one block: the tile counts summed per chunk of 16
// tiles, then scanned into the chunk starts and offsets), M read back on
// the host, fill over the same tiles (a tile's start: its chunk's, plus the
// chunk's earlier tiles' counts; a row's place: that plus the popcount of
// the expert's bits below it); a T * E size check first. dispatch:
// block per row; combine: block per token, a binary search per expert (no
// atomics).
// The read-back marks the module: its host code cannot run as a stream call.
// CHECK: module attributes {gpu.container_module, usmoe.host_reads_device, usmoe.kernels
// CHECK-LABEL: func.func @layer
// CHECK: cf.assert %{{.*}}, "moe.plan on the GPU takes at most 2^31 - 1
// CHECK: %[[TILES:.*]] = arith.ceildivui %{{.*}}, %c128
// CHECK: gpu.launch_func @usmoe_kernels::@plan_0_count blocks in (%[[TILES]], %{{.*}}, %{{.*}}) threads in (%c128
// CHECK: gpu.launch_func @usmoe_kernels::@plan_0_scan blocks in (%c1{{.*}}) threads in (%c1024
// CHECK: %[[M:.*]] = memref.load %{{.*}}[%c8] : memref<9xi32>
// CHECK: %[[ROWS:.*]] = arith.index_cast %[[M]]
// CHECK: memref.alloc(%[[ROWS]]) : memref<?xi32>
// CHECK: gpu.launch_func @usmoe_kernels::@plan_0_fill blocks in (%[[TILES]]
// CHECK: gpu.launch_func @usmoe_kernels::@dispatch_1
// CHECK: gpu.launch_func @usmoe_kernels::@combine_2
// CHECK: gpu.func @plan_0_count(
// CHECK-SAME: workgroup(%[[BITS:.*]] : memref<32xi32, #gpu.address_space<workgroup>>)
// CHECK-SAME: known_block_size = array<i32: 128, 1, 1>
// CHECK: gpu.barrier
// CHECK: memref.atomic_rmw ori %{{.*}}, %[[BITS]]
// CHECK: gpu.barrier
// CHECK: math.ctpop
// CHECK: gpu.return
// CHECK: gpu.func @plan_0_scan(
// CHECK: gpu.shuffle  up
// CHECK: gpu.func @plan_0_fill(
// CHECK: arith.divui %block_id_x{{.*}}, %c16
// CHECK: memref.atomic_rmw ori
// CHECK: gpu.barrier
// CHECK: math.ctpop
// CHECK-NOT: gpu.barrier
// CHECK: gpu.return
// CHECK: gpu.func @combine_2(
// CHECK: scf.while
// CHECK-NOT: atomic_rmw
// CHECK: gpu.return
func.func @layer(%g: tensor<1x?x8xf32>, %m: tensor<1x?x8xi1>, %h: tensor<?x64xbf16>, %init: tensor<?x64xbf16>) -> tensor<?x64xbf16> {
  %o, %i, %w = moe.plan %g, %m : tensor<1x?x8xf32>
  %x = moe.dispatch %h, %i : tensor<?x64xbf16>, tensor<?xi32>
  %y = moe.combine %x, %i, %w into %init offsets %o : tensor<?x64xbf16>, tensor<?xi32>, tensor<?xf32> into tensor<?x64xbf16>, tensor<9xi32>
  return %y : tensor<?x64xbf16>
}

// -----

// Unified: row scores (U with the sigmoid expert score) into the gate
// buffer, then the select with the budget floor(k * T) computed on the host:
// a sequence on one 1024-thread block, or, when it has more than 8192 pairs
// and there are fewer than 128 sequences, on ceildiv(T * 64, 4096) blocks
// (one histogram launch per digit, mark; the score kernel zeroes their
// workspace; the candidate buffer, a quarter of the set's keys per set,
// needs no zeroing), chosen at run time. The score kernel writes each row's
// softmax max and sum, not the scores: the select kernels recompute U from
// the bf16 logits and them (no f32 scores written or read).
// CHECK-LABEL: func.func @unified
// CHECK: cf.assert %{{.*}}, "a selection set (T * E pairs for unified
// CHECK: %[[CHUNKS:.*]] = arith.ceildivui %{{.*}}, %c4096
// CHECK: %[[MANY:.*]] = arith.cmpi ugt, %[[CHUNKS]], %c1
// CHECK: %[[LARGE:.*]] = arith.cmpi ugt, %{{.*}}, %c8192
// CHECK: %[[BOTH:.*]] = arith.andi %[[MANY]], %[[LARGE]]
// CHECK: %[[FEW:.*]] = arith.cmpi ult, %{{.*}}, %c128
// CHECK: %[[SPREAD:.*]] = arith.andi %[[BOTH]], %[[FEW]]
// CHECK: %[[CAPACITY:.*]] = arith.ceildivui %[[SET_SIZE:.*]], %c4
// CHECK: %[[CANDIDATE_WORDS:.*]] = arith.muli %{{.*}}, %[[CAPACITY]]
// CHECK: %[[CANDIDATES_OR_ONE:.*]] = arith.select %[[SPREAD]], %[[CANDIDATE_WORDS]], %c1
// CHECK: %[[WS:.*]] = memref.alloc(%{{.*}}) : memref<?xi32>
// CHECK: %[[CANDIDATES:.*]] = memref.alloc(%[[CANDIDATES_OR_ONE]]) : memref<?xi32>
// CHECK: %[[STATS:.*]] = memref.alloc(%{{.*}}) : memref<?xf32>
// CHECK: %[[N:.*]] = arith.fptosi
// CHECK: %[[BUDGET:.*]] = arith.index_cast %[[N]]
// Sequences of one token, at most 128 of them, take the Token Choice kernel
// ranking U (k = floor(1.5 * 1) = 1): one launch.
// CHECK: %[[ONE:.*]] = arith.cmpi eq, %{{.*}}, %c1
// CHECK: %[[FEW_ROWS:.*]] = arith.cmpi ule, %{{.*}}, %c128
// CHECK: %[[DECODE:.*]] = arith.andi %[[ONE]], %[[FEW_ROWS]]
// CHECK: scf.if %[[DECODE]] {
// CHECK: gpu.launch_func @usmoe_kernels::@route_unified_0_decode
// CHECK-NOT: gpu.launch_func
// CHECK: } else {
// CHECK: gpu.launch_func @usmoe_kernels::@route_unified_0_scores {{.*}} args(%[[LOGITS:.*]] : memref<2x?x64xbf16>, %[[STATS]] : memref<?xf32>, %[[WS]] : memref<?xi32>)
// CHECK: scf.if %[[SPREAD]] {
// CHECK-NOT: gpu.launch_func
// CHECK: %[[GRID:.*]] = arith.muli %{{.*}}, %[[CHUNKS]]
// CHECK: gpu.launch_func @usmoe_kernels::@route_unified_0_select_histogram blocks in (%[[GRID]], {{.*}} args(%[[LOGITS]] : memref<2x?x64xbf16>, %[[STATS]] : memref<?xf32>, %[[WS]] : memref<?xi32>, %[[CANDIDATES]] : memref<?xi32>, %[[BUDGET]] : index, %c0
// CHECK: gpu.launch_func @usmoe_kernels::@route_unified_0_select_histogram {{.*}} %c1
// CHECK: gpu.launch_func @usmoe_kernels::@route_unified_0_select_histogram {{.*}} %c2
// CHECK: gpu.launch_func @usmoe_kernels::@route_unified_0_select_histogram {{.*}} %c3
// CHECK: gpu.launch_func @usmoe_kernels::@route_unified_0_select_mark blocks in (%[[GRID]], {{.*}} args(%[[LOGITS]] : memref<2x?x64xbf16>, %[[STATS]] : memref<?xf32>, %{{.*}} : memref<2x?x64xf32>, %{{.*}} : memref<2x?x64xi1>, %[[WS]] : memref<?xi32>)
// CHECK: } else {
// CHECK: gpu.launch_func @usmoe_kernels::@route_unified_0_select blocks in (%{{.*}}, %{{.*}}, %{{.*}}) threads in (%c1024, %{{.*}}, %{{.*}}) args(%[[LOGITS]] : memref<2x?x64xbf16>, %[[STATS]] : memref<?xf32>, %{{.*}} : memref<2x?x64xf32>, %{{.*}} : memref<2x?x64xi1>, %[[BUDGET]] : index)
// CHECK: gpu.func @route_unified_0_scores(%{{.*}}, %[[SSTATS:.*]]: memref<?xf32>, %[[SWS:.*]]: memref<?xi32>)
// CHECK: memref.store %c0_i32{{[_0-9]*}}, %[[SWS]]
// CHECK: math.exp
// CHECK: memref.store %{{.*}}, %[[SSTATS]]
// CHECK: memref.store %{{.*}}, %[[SSTATS]]
// CHECK-NOT: memref.store
// CHECK: gpu.return
// The one-block select keeps up to 8192 keys in shared memory: the first
// pass stores each key there (a set of at most 8192 elements) or a later
// one appends those matching the prefix; the passes that read them
// recompute no score.
// CHECK: gpu.func @route_unified_0_select(
// CHECK-SAME: workgroup(%[[HIST:.*]] : memref<256xi32, #gpu.address_space<workgroup>>, %[[STATE:.*]] : memref<8xi32, #gpu.address_space<workgroup>>, %{{.*}} : memref<32xi32, #gpu.address_space<workgroup>>, %[[KEYS:.*]] : memref<8192xi32, #gpu.address_space<workgroup>>)
// CHECK: gpu.barrier
// CHECK: math.exp
// CHECK: memref.atomic_rmw addi %{{.*}}, %[[HIST]]
// CHECK: memref.store %{{.*}}, %[[KEYS]]
// CHECK: memref.load %[[KEYS]]
// CHECK-NOT: math.exp
// CHECK: memref.atomic_rmw addi %{{.*}}, %[[HIST]]
// CHECK: gpu.shuffle  up
// CHECK: memref.atomic_rmw addi %{{.*}}, %[[STATE]]
// CHECK: memref.store %{{.*}}, %[[KEYS]]
// The histogram launch: the block's counts added to the set's, a done
// counter, and the last block takes the merged histogram (zeroing it).
// A pass after the compaction reads the candidate keys and recomputes no
// score; the others recompute it: the bf16 logit, the row's max and sum,
// exp. The compacting pass appends its matches: a warp scan, one
// reservation per warp (lane 31's atomic, broadcast), the keys stored.
// CHECK: gpu.func @route_unified_0_select_histogram(%[[HLOGITS:.*]]: memref<2x?x64xbf16>, %[[HSTATS:.*]]: memref<?xf32>, %[[GWS:.*]]: memref<?xi32>, %[[GCAND:.*]]: memref<?xi32>, %{{.*}}: index, %{{.*}}: index) workgroup(%[[LOCAL:.*]] : memref<256xi32, #gpu.address_space<workgroup>>
// CHECK: scf.if
// CHECK: memref.load %[[GCAND]]
// CHECK-NOT: math.exp
// CHECK: memref.atomic_rmw addi %{{.*}}, %[[LOCAL]]
// CHECK: } else {
// CHECK: memref.load %[[HLOGITS]]
// CHECK: memref.load %[[HSTATS]]
// CHECK: memref.load %[[HSTATS]]
// CHECK: math.exp
// CHECK: memref.atomic_rmw addi %{{.*}}, %[[LOCAL]]
// CHECK: gpu.shuffle  up
// CHECK: gpu.shuffle  idx
// CHECK: memref.atomic_rmw addi %{{.*}}, %[[GWS]]
// CHECK: gpu.shuffle  idx
// CHECK: memref.store %{{.*}}, %[[GCAND]]
// CHECK: gpu.barrier
// CHECK: memref.atomic_rmw addi %{{.*}}, %[[GWS]]
// CHECK: memref.atomic_rmw addi %{{.*}}, %[[GWS]]
// CHECK: memref.atomic_rmw assign %{{.*}}, %[[GWS]]
// CHECK: gpu.func @route_unified_0_select_mark(
// CHECK-NOT: gpu.barrier
// CHECK-NOT: atomic_rmw
// CHECK: gpu.return
// The decode kernel ranks U = 0.5 * P + 0.5 * (2/64) * sigmoid(L).
// CHECK: gpu.func @route_unified_0_decode(
// CHECK: math.exp
// CHECK: arith.constant 5.000000e-01 : f32
// CHECK: math.exp
// CHECK: arith.constant 3.125000e-02 : f32
// CHECK: gpu.shuffle  xor %{{.*}} : i32
// CHECK: gpu.return
func.func @unified(%l: tensor<2x?x64xbf16>) -> tensor<2x?x64xf32> {
  %g, %m = moe.route #moe.unified<k = 1.5> %l : tensor<2x?x64xbf16>
  return %g : tensor<2x?x64xf32>
}

// -----

// Token Choice's top-k lists come from the route kernel (its picks, ranked
// by gate): no topk_list kernel, the list op's results are the route's two
// extra buffers. With a bias the picks follow the biased ranking, not the
// gates, so the list keeps its own kernel.
// CHECK-LABEL: func.func @token_lists
// CHECK: %[[IDS:.*]] = memref.alloc(%{{.*}}) : memref<?x2xi32>
// CHECK: %[[W:.*]] = memref.alloc(%{{.*}}) : memref<?x2xf32>
// CHECK: gpu.launch_func @usmoe_kernels::@route_token_0 {{.*}} args({{.*}}, %[[IDS]] : memref<?x2xi32>, %[[W]] : memref<?x2xf32>)
// CHECK-NOT: gpu.launch_func @usmoe_kernels::@topk_list
// CHECK: return
// CHECK: gpu.func @route_token_0(
// CHECK: gpu.shuffle  idx
// CHECK: memref.store %{{.*}} : memref<?x2xi32>
// CHECK: memref.store %{{.*}} : memref<?x2xf32>
// CHECK-LABEL: func.func @biased_lists
// CHECK: gpu.launch_func @usmoe_kernels::@route_token_0
// CHECK: gpu.launch_func @usmoe_kernels::@topk_list_1
func.func @token_lists(%l: tensor<?x?x16xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %g, %m = moe.route #moe.token<k = 2, renormalize> %l : tensor<?x?x16xf32>
  %i, %w = moe.topk_list %g, %m k = 2 : tensor<?x?x16xf32>
  return %i, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// -----

func.func @biased_lists(%l: tensor<?x?x16xf32>, %bias: tensor<16xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %g, %m = moe.route #moe.token<k = 2> %l bias %bias : tensor<?x?x16xf32>, tensor<16xf32>
  %i, %w = moe.topk_list %g, %m k = 2 : tensor<?x?x16xf32>
  return %i, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// -----

// A plan of a route's selection: M = B * floor(k * T) on the host (none
// when T = 0), before any plan launch: no read-back of the device's count.
// The route allocates the plan's tile and chunk counts (zeroed by its score
// kernel), starts and offsets, and its select kernel counts the selected
// pairs per (expert, tile of 128 rows) and per (expert, chunk of 16 tiles)
// and scans the chunk counts (the block done last): the plan only fills.
// Rows that fit one tile take the single-block plan kernel.
// CHECK: module attributes {gpu.container_module, usmoe.kernels
// CHECK-LABEL: func.func @route_then_plan
// CHECK: %[[COUNTS:.*]] = memref.alloc(%{{.*}}) : memref<?xi32>
// CHECK: %[[STARTS:.*]] = memref.alloc(%{{.*}}) : memref<?xi32>
// CHECK: %[[OFFSETS:.*]] = memref.alloc() : memref<9xi32>
// CHECK: gpu.launch_func @usmoe_kernels::@route_unified_0_scores {{.*}} args({{.*}}, %[[COUNTS]] : memref<?xi32>, %{{.*}} : memref<?xi32>)
// CHECK: gpu.launch_func @usmoe_kernels::@route_unified_0_select_mark {{.*}}, %[[COUNTS]] : memref<?xi32>, %[[STARTS]] : memref<?xi32>, %[[OFFSETS]] : memref<9xi32>)
// CHECK: gpu.launch_func @usmoe_kernels::@route_unified_0_select {{.*}}, %[[COUNTS]] : memref<?xi32>, %[[STARTS]] : memref<?xi32>, %[[OFFSETS]] : memref<9xi32>)
// CHECK: "moe.plan on the GPU takes at most
// CHECK: %[[TILES:.*]] = arith.ceildivui %{{.*}}, %c128
// CHECK: %[[N:.*]] = arith.fptosi
// CHECK: %[[BUDGET:.*]] = arith.index_cast %[[N]]
// CHECK: %[[PAIRS:.*]] = arith.muli %{{.*}}, %[[BUDGET]]
// CHECK: %[[M:.*]] = arith.select %{{.*}}, %c0{{.*}}, %[[PAIRS]]
// CHECK: memref.alloc(%[[M]]) : memref<?xi32>
// CHECK: %[[ONE:.*]] = arith.cmpi ule, %[[TILES]], %c1
// CHECK: scf.if %[[ONE]] {
// CHECK: gpu.launch_func @usmoe_kernels::@plan_1_single {{.*}} %[[COUNTS]] : memref<?xi32>, %[[STARTS]] : memref<?xi32>, %[[OFFSETS]] : memref<9xi32>
// CHECK-NOT: gpu.launch_func
// CHECK: } else {
// CHECK-NOT: gpu.launch_func
// CHECK: gpu.launch_func @usmoe_kernels::@plan_1_fill blocks in (%[[TILES]], {{.*}} %[[COUNTS]] : memref<?xi32>, %[[STARTS]] : memref<?xi32>
// CHECK: return
// The select kernel counts its selection when there are several tiles: in
// the pair's tile and its chunk.
// CHECK: gpu.func @route_unified_0_select(
// CHECK: %[[NT:.*]] = arith.ceildivui %{{.*}}, %c128
// CHECK: %[[AT_LEAST_ONE:.*]] = arith.maxui %[[NT]], %c1
// CHECK: %[[CHUNKS:.*]] = arith.ceildivui %[[AT_LEAST_ONE]], %c16
// CHECK: %[[SEVERAL:.*]] = arith.cmpi ugt, %[[AT_LEAST_ONE]], %c1
// CHECK: %[[TILE:.*]] = arith.divui %{{.*}}, %c128
// CHECK: %[[CHUNK:.*]] = arith.divui %[[TILE]], %c16
// CHECK: arith.muli %{{.*}}, %[[CHUNKS]]
// CHECK: memref.atomic_rmw addi %c1_i32
// CHECK-NEXT: arith.constant 1 : i32
// CHECK-NEXT: memref.atomic_rmw addi %c1_i32
// CHECK: scf.if %[[SEVERAL]] {
// CHECK: gpu.barrier
// CHECK: nvvm.memory.barrier <gpu>
// CHECK: memref.atomic_rmw addi %c1_i32
// CHECK-NEXT: nvvm.memory.barrier <gpu>
// CHECK: gpu.func @plan_1_single(
// CHECK-NOT: gpu.func @plan_1_count
// CHECK: gpu.func @plan_1_fill(
// CHECK-NOT: gpu.func @plan_1_count
func.func @route_then_plan(%l: tensor<?x?x8xf32>) -> (tensor<9xi32>, tensor<?xi32>) {
  %g, %m = moe.route #moe.unified<k = 1.5> %l : tensor<?x?x8xf32>
  %o, %i, %w = moe.plan %g, %m : tensor<?x?x8xf32>
  return %o, %i : tensor<9xi32>, tensor<?xi32>
}

// -----

// softmax_tokens adds a column kernel (one block per (sequence, expert));
// Expert Choice selects per column, one block per (sequence, expert).
// CHECK-LABEL: func.func @column_kernels
// CHECK: gpu.launch_func @usmoe_kernels::@route_unified_0_scores
// CHECK: gpu.launch_func @usmoe_kernels::@route_unified_0_mix
// CHECK: gpu.launch_func @usmoe_kernels::@route_unified_0_select
// CHECK: gpu.launch_func @usmoe_kernels::@route_expert_1_scores
// CHECK: gpu.launch_func @usmoe_kernels::@route_expert_1_select
func.func @column_kernels(%l: tensor<1x?x8xf32>) -> (tensor<1x?x8xf32>, tensor<1x?x8xf32>) {
  %g, %m = moe.route #moe.unified<n = 4, expert_score = softmax_tokens> %l : tensor<1x?x8xf32>
  %g2, %m2 = moe.route #moe.expert<capacity = 2> %l : tensor<1x?x8xf32>
  return %g, %g2 : tensor<1x?x8xf32>, tensor<1x?x8xf32>
}

// -----

// f32 expert_ffn: one block per plan row; the expert comes from a binary
// search in the offsets; an [M, F] f32 scratch holds the hidden activations.
// CHECK-LABEL: func.func @ffn
// CHECK: %[[SCRATCH:.*]] = memref.alloc(%{{.*}}) : memref<?x32xf32>
// CHECK: gpu.launch_func @usmoe_kernels::@expert_ffn_0 blocks in (%{{.*}}, %{{.*}}, %{{.*}}) threads in (%c256
// CHECK-SAME: %[[SCRATCH]] : memref<?x32xf32>
// CHECK: gpu.func @expert_ffn_0(
// CHECK: scf.while
// CHECK: math.exp
// CHECK: gpu.barrier
func.func @ffn(%x: tensor<?x16xf32>, %o: tensor<5xi32>, %w1: tensor<4x16x32xf32>,
               %w3: tensor<4x16x32xf32>, %w2: tensor<4x32x16xf32>) -> tensor<?x16xf32> {
  %y = moe.expert_ffn %x, %o, %w1, %w3, %w2
      : tensor<?x16xf32>, tensor<5xi32>, tensor<4x16x32xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// bf16 expert_ffn: two grouped GEMMs on tensor cores. Grid: row tiles
// (min(ceildiv(M, 64) + E, M)) times column tiles; the SwiGLU output h is
// [M, F] bf16 (no f32 scratch); the down GEMM writes the f32 rows.
// CHECK-LABEL: func.func @ffn_tensor_cores
// CHECK: %[[M:.*]] = memref.dim %{{.*}}, %c0 : memref<?x16xbf16>
// CHECK: %[[E:.*]] = memref.dim %{{.*}}, %{{.*}} : memref<4x16x32xbf16
// CHECK: %[[H:.*]] = memref.alloc(%[[M]]) : memref<?x32xbf16>
// CHECK-NOT: memref<?x32xf32>
// CHECK: %[[ROWS:.*]] = arith.ceildivui %[[M]], %c64
// CHECK: %[[PADDED:.*]] = arith.addi %[[ROWS]], %[[E]] : index
// CHECK: %[[TILES:.*]] = arith.minui %[[PADDED]], %[[M]] : index
// CHECK: %[[UP:.*]] = arith.muli %[[TILES]], %{{.*}} : index
// CHECK: gpu.launch_func @usmoe_kernels::@expert_gate_up_0 blocks in (%[[UP]], %{{[^)]*}}) threads in (%c128, %{{[^)]*}}) args({{.*}}, %[[H]] : memref<?x32xbf16>)
// CHECK: gpu.launch_func @usmoe_kernels::@expert_down_0 blocks in ({{.*}}) threads in (%c128{{.*}}) args(%[[H]] : memref<?x32xbf16>
// CHECK: gpu.func @expert_gate_up_0({{.*}}) workgroup({{.*}} : memref<64x40xbf16, #gpu.address_space<workgroup>>, {{.*}} : memref<64x40xbf16, #gpu.address_space<workgroup>>, {{.*}} : memref<64x40xbf16, #gpu.address_space<workgroup>>)
// CHECK-COUNT-32: nvgpu.mma.sync
// CHECK: math.exp
// CHECK: gpu.func @expert_down_0(
// CHECK-COUNT-16: nvgpu.mma.sync
// CHECK-NOT: math.exp
func.func @ffn_tensor_cores(%x: tensor<?x16xbf16>, %o: tensor<5xi32>, %w1: tensor<4x16x32xbf16>,
                            %w3: tensor<4x16x32xbf16>, %w2: tensor<4x32x16xbf16>) -> tensor<?x16xf32> {
  %y = moe.expert_ffn %x, %o, %w1, %w3, %w2
      : tensor<?x16xbf16>, tensor<5xi32>, tensor<4x16x32xbf16>, tensor<4x16x32xbf16>, tensor<4x32x16xbf16>
  return %y : tensor<?x16xf32>
}

// -----

// A dispatch whose only user is a bf16 expert_ffn is gathered by the first
// GEMM (hidden and the token ids go to it; no dispatch kernel); a dispatch
// with another user keeps its kernel.
// CHECK-LABEL: func.func @gathered
// CHECK-NOT: @dispatch_
// CHECK: gpu.launch_func @usmoe_kernels::@expert_gate_up_0 {{.*}} args(%{{.*}} : memref<?x16xbf16>, %{{.*}} : memref<?xi32>, %{{.*}} : memref<5xi32>,
// CHECK-LABEL: func.func @shared_dispatch
// CHECK: gpu.launch_func @usmoe_kernels::@dispatch_1
// CHECK: gpu.launch_func @usmoe_kernels::@expert_gate_up_2 {{.*}} args(%{{.*}} : memref<?x16xbf16>, %{{.*}} : memref<5xi32>,
// CHECK: gpu.func @expert_gate_up_0(%{{.*}}: memref<?x16xbf16>, %{{.*}}: memref<?xi32>, %{{.*}}: memref<5xi32>,
func.func @gathered(%hidden: tensor<?x16xbf16>, %ids: tensor<?xi32>, %o: tensor<5xi32>,
                    %w1: tensor<4x16x32xbf16>, %w3: tensor<4x16x32xbf16>,
                    %w2: tensor<4x32x16xbf16>) -> tensor<?x16xf32> {
  %x = moe.dispatch %hidden, %ids : tensor<?x16xbf16>, tensor<?xi32>
  %y = moe.expert_ffn %x, %o, %w1, %w3, %w2
      : tensor<?x16xbf16>, tensor<5xi32>, tensor<4x16x32xbf16>, tensor<4x16x32xbf16>, tensor<4x32x16xbf16>
  return %y : tensor<?x16xf32>
}
func.func @shared_dispatch(%hidden: tensor<?x16xbf16>, %ids: tensor<?xi32>, %o: tensor<5xi32>,
                           %w1: tensor<4x16x32xbf16>, %w3: tensor<4x16x32xbf16>,
                           %w2: tensor<4x32x16xbf16>) -> (tensor<?x16xf32>, tensor<?x16xbf16>) {
  %x = moe.dispatch %hidden, %ids : tensor<?x16xbf16>, tensor<?xi32>
  %y = moe.expert_ffn %x, %o, %w1, %w3, %w2
      : tensor<?x16xbf16>, tensor<5xi32>, tensor<4x16x32xbf16>, tensor<4x16x32xbf16>, tensor<4x32x16xbf16>
  return %y, %x : tensor<?x16xf32>, tensor<?x16xbf16>
}

// -----

// sigmoid_bias Token Choice: the kernel takes the bias as a fourth argument,
// gates are sigmoid(L) (no row sum), the ranking adds the bias.
// CHECK-LABEL: func.func @sigmoid_bias
// CHECK: gpu.launch_func @usmoe_kernels::@route_token_0 {{.*}} args({{.*}}, %{{.*}} : memref<64xf32>)
// CHECK: gpu.func @route_token_0(
// CHECK-SAME: memref<64xf32>
// CHECK: math.exp
// CHECK: memref.load %{{.*}} : memref<64xf32>
// CHECK: arith.addf
func.func @sigmoid_bias(%l: tensor<?x?x64xbf16>, %b: tensor<64xf32>) -> tensor<?x?x64xf32> {
  %g, %m = moe.route #moe.token<k = 8, renormalize> %l bias %b : tensor<?x?x64xbf16>, tensor<64xf32>
  return %g : tensor<?x?x64xf32>
}
