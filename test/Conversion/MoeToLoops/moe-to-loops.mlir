// RUN: usmoe-opt %s -convert-moe-to-loops -split-input-file | FileCheck %s

// Scores: read the logits buffer, compute in f32, hand back a fresh tensor;
// groups of 8 rows are independent (an scf.parallel over B x T/8).
// CHECK-LABEL: func.func @token_softmax
// CHECK: %[[IN:.*]] = bufferization.to_buffer %{{.*}} read_only : tensor<?x?x8xbf16> to memref<?x?x8xbf16>
// CHECK: %[[OUT:.*]] = memref.alloc(%{{.*}}, %{{.*}}) : memref<?x?x8xf32>
// CHECK: arith.ceildivui %{{.*}}, %c8
// CHECK: scf.parallel (%{{.*}}, %{{.*}}) = (%{{.*}}, %{{.*}}) to (%{{.*}}, %{{.*}})
// CHECK: scf.for
// The max of sanitized logits (no NaN left) as a maxnum reduction without
// fast-math flags (with them LLVM does not vectorize it).
// CHECK: scf.for {{.*}} -> (f32) {
// CHECK: arith.extf %{{.*}} : bf16 to f32
// CHECK: arith.cmpf uno
// CHECK: arith.maxnumf %{{.*}}, %{{.*}} : f32
// CHECK-NOT: fastmath
// CHECK: scf.yield
// The exps in a loop that carries nothing (it vectorizes) ...
// CHECK: scf.for
// CHECK-NOT: iter_args
// CHECK: math.exp
// CHECK: memref.store
// ... then the sums of 8 rows side by side, in SoftmaxSum's integer units
// (2^59 for 8 terms: the same bits as the GPU's butterfly), each converted
// to f32 once.
// CHECK: arith.constant 5.76460752E+17 : f32
// CHECK: scf.for {{.*}} -> (i64, i64, i64, i64, i64, i64, i64, i64) {
// CHECK-COUNT-8: arith.fptosi %{{.*}} : f32 to i64
// CHECK-NOT: arith.addf
// CHECK: scf.yield
// CHECK: arith.sitofp %{{.*}} : i64 to f32
// CHECK: arith.divf
// Small calls run the same body in sequential loops; the if is marked so
// that usmoe-share-parallel-bodies keeps one copy of the body.
// CHECK: } else {
// CHECK: scf.for
// CHECK: arith.divf
// CHECK: } {usmoe.sequential_twin}
// CHECK: bufferization.to_tensor %[[OUT]] restrict writable
// CHECK-NOT: moe.
func.func @token_softmax(%l: tensor<?x?x8xbf16>) -> tensor<?x?x8xf32> {
  %p = moe.token_softmax %l : tensor<?x?x8xbf16>
  return %p : tensor<?x?x8xf32>
}

// -----

// The unified global top-N: sequences in parallel, each with its own row of
// the scratch; a fixed budget of 24 takes no running top-k (statically); a
// set of at most 32 pairs is selected by ranks, a larger one by a radix
// select over i32 keys with a 256-bin histogram (in 4 copies, filled by
// turns): the top byte over the whole set; a second pass over the whole set
// lists the keys of the chosen top-byte bin with their positions, without
// a branch (each key written at the list's end, the end moved by whether it
// belongs; every range has a spare entry, preset to a key of another top
// byte); the last three bytes (counted by adding whether they match) and
// the tie cut over that list only, then the selection pass (which no
// longer reads the list). The passes over the whole set run on 8 token
// ranges in parallel (each with its own 1024 histogram entries of the
// [B, 8192] scratch) when one sequence (B = 1) has at least 2^16 pairs,
// else on one range.
// CHECK-LABEL: func.func @global_top_n
// CHECK: cf.assert %{{.*}}, "moe: unified budget n exceeds T * E of the input"
// CHECK: %[[ALONE:.*]] = arith.cmpi eq, %[[B:.*]], %c1
// CHECK: %[[LARGE:.*]] = arith.cmpi uge, %{{.*}}, %c65536
// CHECK: %[[BOTH:.*]] = arith.andi %[[ALONE]], %[[LARGE]]
// CHECK: %[[CHUNKS:.*]] = arith.select %[[BOTH]], %c8{{.*}}, %c1
// CHECK: %[[HIST:.*]] = memref.alloc(%[[B]]) : memref<?x8192xi32>
// CHECK: scf.parallel (%{{.*}}, %[[SEQ:.*]]) =
// CHECK: memref.subview %[[HIST]][%[[SEQ]], 0] [1, 8192] [1, 1]
// CHECK-NOT: arith.cmpi ule, %{{.*}}, %c8
// CHECK: arith.cmpi ule, %{{.*}}, %c32
// CHECK: } else {
// CHECK: scf.parallel (%{{.*}}, %{{.*}}) = (%{{.*}}, %{{.*}}) to (%{{.*}}, %[[CHUNKS]])
// CHECK: arith.shrui %{{.*}}, %c24_i32{{.*}} : i32
// CHECK: %[[STARTS:.*]] = memref.alloc(%[[CHUNKS]]) : memref<?xi32>
// CHECK: %[[LISTED:.*]] = arith.addi %{{.*}}, %[[CHUNKS]] : index
// CHECK: %[[KEYS:.*]] = memref.alloc(%[[LISTED]]) : memref<?xi32>
// CHECK: %[[POSITIONS:.*]] = memref.alloc(%[[LISTED]]) : memref<?xi32>
// CHECK: %[[OTHER:.*]] = arith.xori %{{.*}}, %c-16777216_i32
// CHECK: scf.for
// CHECK: memref.store %{{.*}}, %[[STARTS]]
// CHECK: memref.store %[[OTHER]], %[[KEYS]]
// CHECK: scf.parallel (%{{.*}}, %[[CHUNK:.*]]) = (%{{.*}}, %{{.*}}) to (%{{.*}}, %[[CHUNKS]])
// CHECK: memref.load %[[STARTS]][%[[CHUNK]]]
// CHECK-NOT: scf.if
// CHECK: memref.store %{{.*}}, %[[KEYS]]
// CHECK: memref.store %{{.*}}, %[[POSITIONS]]
// CHECK: arith.index_castui %{{.*}} : i1 to index
// CHECK: scf.for %[[H:.*]] = %{{.*}} to %[[LISTED]]
// CHECK: memref.load %[[KEYS]][%[[H]]]
// CHECK: arith.shrui %{{.*}}, %c16_i32{{.*}} : i32
// CHECK: arith.extui %{{.*}} : i1 to i32
// CHECK: scf.for %[[I:.*]] = %{{.*}} to %[[LISTED]]
// CHECK: memref.load %[[KEYS]][%[[I]]]
// CHECK: arith.shrui %{{.*}}, %c8_i32{{.*}} : i32
// CHECK: scf.for %[[J:.*]] = %{{.*}} to %[[LISTED]]
// CHECK: memref.load %[[KEYS]][%[[J]]]
// CHECK: scf.for %[[K:.*]] = %{{.*}} to %[[LISTED]]
// CHECK: memref.load %[[POSITIONS]][%[[K]]]
// CHECK: arith.cmpi ugt
// CHECK-NOT: %[[KEYS]]
// CHECK: scf.yield
func.func @global_top_n(%l: tensor<1x?x64xf32>) -> tensor<1x?x64xi1> {
  %g, %m = moe.route #moe.unified<n = 24> %l : tensor<1x?x64xf32>
  return %m : tensor<1x?x64xi1>
}

// -----

// A fractional budget is floor(k * T), computed at run time in f64.
// CHECK-LABEL: func.func @fractional_budget
// CHECK: arith.constant 1.500000e+00 : f64
// CHECK: arith.mulf %{{.*}}, %{{.*}} : f64
// CHECK: math.floor %{{.*}} : f64
// CHECK-NOT: cf.assert
func.func @fractional_budget(%s: tensor<?x?x8xf32>) -> tensor<?x?x8xi1> {
  %g, %m = moe.select_global %s k = 1.5 : tensor<?x?x8xf32>
  return %m : tensor<?x?x8xi1>
}

// -----

// The plan: counts, prefix sums, then M-sized buffers filled in order.
// CHECK-LABEL: func.func @plan
// CHECK: memref.alloc() : memref<9xi32>
// CHECK: memref.alloc(%{{.*}}) : memref<?xi32>
// CHECK: memref.alloc(%{{.*}}) : memref<?xf32>
// CHECK: scf.if
// CHECK: bufferization.to_tensor
func.func @plan(%g: tensor<?x?x8xf32>, %m: tensor<?x?x8xi1>) -> (tensor<9xi32>, tensor<?xi32>, tensor<?xf32>) {
  %o, %i, %w = moe.plan %g, %m : tensor<?x?x8xf32>
  return %o, %i, %w : tensor<9xi32>, tensor<?xi32>, tensor<?xf32>
}

// -----

// Combine accumulates in f32 and rounds once to the element type. Init is
// widened rows in parallel; the accumulation runs column chunks of 64 in
// parallel, each over every row in ascending order (rows scatter into
// shared tokens, so they are not split), then rows are rounded in parallel.
// CHECK-LABEL: func.func @combine_bf16
// CHECK: %[[ACC:.*]] = memref.alloc(%{{.*}}) : memref<?x16xf32>
// CHECK: scf.parallel
// CHECK: arith.extf %{{.*}} : bf16 to f32
// CHECK: } {usmoe.sequential_twin}
// CHECK: %[[CHUNKS:.*]] = arith.ceildivui %{{.*}}, %c64 : index
// CHECK: scf.parallel (%{{.*}}, %[[C:.*]]) = (%{{.*}}, %{{.*}}) to (%{{.*}}, %[[CHUNKS]])
// CHECK: %[[FIRST:.*]] = arith.muli %[[C]], %c64 : index
// CHECK: %[[LAST:.*]] = arith.minui %{{.*}}, %{{.*}} : index
// CHECK: scf.for %[[M:.*]] = %{{.*}} to %{{.*}} step
// CHECK: scf.for %[[D:.*]] = %[[FIRST]] to %[[LAST]] step
// CHECK: memref.store %{{.*}}, %[[ACC]][%{{.*}}, %[[D]]] : memref<?x16xf32>
// CHECK: } {usmoe.sequential_twin}
// CHECK: scf.parallel
// CHECK: arith.truncf %{{.*}} : f32 to bf16
// CHECK: } {usmoe.sequential_twin}
// CHECK-NOT: scf.parallel
// CHECK: return
func.func @combine_bf16(%x: tensor<?x16xbf16>, %i: tensor<?xi32>, %w: tensor<?xf32>, %init: tensor<?x16xbf16>) -> tensor<?x16xbf16> {
  %y = moe.combine %x, %i, %w into %init : tensor<?x16xbf16>, tensor<?xi32>, tensor<?xf32> into tensor<?x16xbf16>
  return %y : tensor<?x16xbf16>
}

// -----

// Dispatch copies rows in parallel (each row writes its own output row),
// after the ids are checked.
// CHECK-LABEL: func.func @dispatch_rows
// CHECK: cf.assert %{{.*}}, "moe: dispatch: a token id is outside [0, tokens)"
// CHECK: scf.parallel (%{{.*}}, %[[M:.*]]) = (%{{.*}}, %{{.*}}) to (%{{.*}}, %{{.*}})
// CHECK: %[[ID:.*]] = memref.load %{{.*}}[%[[M]]] : memref<?xi32>
// CHECK: %[[G:.*]] = arith.index_cast %[[ID]] : i32 to index
// CHECK: %[[V:.*]] = memref.load %{{.*}}[%[[G]], %[[D:.*]]] : memref<?x32xf32>
// CHECK: memref.store %[[V]], %{{.*}}[%[[M]], %[[D]]] : memref<?x32xf32>
// CHECK: } {usmoe.sequential_twin}
// CHECK-NOT: scf.parallel
// CHECK: return
func.func @dispatch_rows(%h: tensor<?x32xf32>, %i: tensor<?xi32>) -> tensor<?x32xf32> {
  %x = moe.dispatch %h, %i : tensor<?x32xf32>, tensor<?xi32>
  return %x : tensor<?x32xf32>
}

// -----

// The top-k lists of a Token Choice route (same gates and mask, the route's
// k) are written by the route's row loop from each row's picks, ranked by
// final gate (here renormalized), then expert: no second scan of the rows.
// CHECK-LABEL: func.func @token_route_lists
// CHECK: %[[IDS:.*]] = memref.alloc(%{{.*}}) : memref<?x2xi32>
// CHECK: %[[WEIGHTS:.*]] = memref.alloc(%{{.*}}) : memref<?x2xf32>
// CHECK: scf.parallel
// CHECK: arith.divf
// CHECK: arith.cmpi ugt
// CHECK: arith.cmpi slt
// CHECK: memref.store %{{.*}}, %[[IDS]][%{{.*}}, %{{.*}}] : memref<?x2xi32>
// CHECK: memref.store %{{.*}}, %[[WEIGHTS]][%{{.*}}, %{{.*}}] : memref<?x2xf32>
// CHECK: scf.reduce
// CHECK-NOT: scf.parallel
// CHECK: return
func.func @token_route_lists(%l: tensor<?x?x8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %g, %m = moe.route #moe.token<k = 2, renormalize> %l : tensor<?x?x8xf32>
  %ids, %w = moe.topk_list %g, %m k = 2 : tensor<?x?x8xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// -----

// A list with another k than the route's scans the routed rows itself.
// CHECK-LABEL: func.func @token_route_other_k
// CHECK: scf.parallel
// CHECK: scf.reduce
// CHECK: memref.alloc(%{{.*}}) : memref<?x3xi32>
// CHECK: scf.parallel
// CHECK: memref.store %{{.*}} : memref<?x3xi32>
func.func @token_route_other_k(%l: tensor<?x?x8xf32>) -> (tensor<?x3xi32>, tensor<?x3xf32>) {
  %g, %m = moe.route #moe.token<k = 2> %l : tensor<?x?x8xf32>
  %ids, %w = moe.topk_list %g, %m k = 3 : tensor<?x?x8xf32>
  return %ids, %w : tensor<?x3xi32>, tensor<?x3xf32>
}

// -----

// The plan of a Token Choice route is built from each row's k picks (kept
// as [rows, k] lists by the route's row loop), O(rows * k): the mask is not
// read back.
// CHECK-LABEL: func.func @token_route_plan
// CHECK: %[[MASK:.*]] = memref.alloc(%{{.*}}, %{{.*}}) : memref<?x?x8xi1>
// CHECK: %[[PICKS:.*]] = memref.alloc(%{{.*}}) : memref<?x2xi32>
// CHECK: scf.parallel
// CHECK: memref.store %{{.*}}, %[[PICKS]][%{{.*}}, %{{.*}}] : memref<?x2xi32>
// CHECK: scf.reduce
// CHECK: memref.alloc(%{{.*}}) : memref<?x8xi32>
// CHECK: memref.load %[[PICKS]]
// CHECK-NOT: memref.load %[[MASK]]
// CHECK: return
func.func @token_route_plan(%l: tensor<?x?x8xf32>) -> (tensor<9xi32>, tensor<?xi32>, tensor<?xf32>) {
  %g, %m = moe.route #moe.token<k = 2> %l : tensor<?x?x8xf32>
  %o, %i, %w = moe.plan %g, %m : tensor<?x?x8xf32>
  return %o, %i, %w : tensor<9xi32>, tensor<?xi32>, tensor<?xf32>
}

// -----

// Token Choice (k <= 16) selects a group's 8 rows side by side: k key and
// k id vectors (one running top-k per lane) carried across the experts,
// each step the 8 rows' scores of an expert in one gather (offsets of whole
// rows, E = 16, in the flattened gates; the last row repeated past the
// group's count), their keys as a vector and a compare-and-select network
// without a branch; then each row's picks are extracted by its lane. A group
// of one row (a decode step: 7 idle lanes, a gather per expert) scans its
// own contiguous keys instead.
// CHECK-LABEL: func.func @token_route_by_lanes
// CHECK: scf.parallel
// CHECK: arith.divf
// CHECK: %[[FEW:.*]] = arith.cmpi ule, %[[GROUP:.*]], %c1{{.*}} : index
// CHECK-NEXT: scf.if %[[FEW]] {
// CHECK-NOT: vector.gather
// CHECK: memref.load %{{.*}} : memref<?x?x16xf32>
// CHECK-NOT: vector.gather
// CHECK: } else {
// CHECK: %[[ROW7:.*]] = arith.minui %c7{{.*}}, %{{.*}} : index
// CHECK-NEXT: %[[OFF7:.*]] = arith.muli %[[ROW7]], %c16
// CHECK: %[[OFFSETS:.*]] = vector.from_elements %{{.*}}, %[[OFF7]] : vector<8xindex>
// CHECK: %[[FLAT:.*]] = memref.collapse_shape %{{.*}} {{\[\[}}0, 1, 2]] : memref<?x?x16xf32> into memref<?xf32>
// CHECK: %[[BEST:.*]]:8 = scf.for %{{.*}} iter_args({{.*}}) -> (vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>) {
// CHECK: %[[SCORES:.*]] = vector.gather %[[FLAT]][%{{.*}}] [%[[OFFSETS]]]
// CHECK: %[[BITS:.*]] = arith.bitcast %{{.*}} : vector<8xf32> to vector<8xi32>
// CHECK: %[[KEYS:.*]] = arith.xori %[[BITS]]
// CHECK-COUNT-4: arith.cmpi ugt, %[[KEYS]], %{{.*}} : vector<8xi32>
// CHECK-NOT: scf.if
// CHECK: scf.yield
// CHECK: scf.for %[[LANE:.*]] = %{{.*}} to %[[GROUP]] step
// CHECK-COUNT-4: vector.extract %[[BEST]]#{{[4-7]}}[%[[LANE]]] : i32 from vector<8xi32>
// CHECK: scf.reduce
func.func @token_route_by_lanes(%l: tensor<?x?x16xf32>) -> (tensor<?x?x16xf32>, tensor<?x?x16xi1>) {
  %g, %m = moe.route #moe.token<k = 4> %l : tensor<?x?x16xf32>
  return %g, %m : tensor<?x?x16xf32>, tensor<?x?x16xi1>
}

// -----

// Beyond k = 16, each row is scanned k times: no vectors.
// CHECK-LABEL: func.func @token_route_by_scans
// CHECK: scf.parallel
// CHECK: scf.for {{.*}} -> (i32, i32, i1) {
// CHECK: scf.reduce
// CHECK-NOT: vector
func.func @token_route_by_scans(%l: tensor<?x?x24xf32>) -> (tensor<?x?x24xf32>, tensor<?x?x24xi1>) {
  %g, %m = moe.route #moe.token<k = 17> %l : tensor<?x?x24xf32>
  return %g, %m : tensor<?x?x24xf32>, tensor<?x?x24xi1>
}

// -----

// The unfused selection takes the same paths.
// CHECK-LABEL: func.func @token_route_by_lanes_select
// CHECK: scf.parallel
// CHECK: scf.for {{.*}} -> (vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>) {
// CHECK: vector.extract
func.func @token_route_by_lanes_select(%s: tensor<?x?x16xf32>) -> (tensor<?x?x16xf32>, tensor<?x?x16xi1>) {
  %g, %m = moe.select_topk %s k = 5 : tensor<?x?x16xf32>
  return %g, %m : tensor<?x?x16xf32>, tensor<?x?x16xi1>
}

// -----

// Expert Choice of a capacity of at most 32: token by token, blocks of 16
// experts side by side (E = 40: two full blocks and one of 8), each expert's
// running top-C in slot-major state [tasks, slots * 16]; a fixed capacity 2
// takes the 2-slot state and nothing else (no 1-slot variant, no columns).
// CHECK-LABEL: func.func @expert_choice_rows
// CHECK-NOT: xi32>
// CHECK: %[[KEYS:.*]] = memref.alloc(%[[TASKS:.*]]) : memref<?x32xi32>
// CHECK: %[[IDS:.*]] = memref.alloc(%[[TASKS]]) : memref<?x32xi32>
// CHECK: scf.parallel (%[[SEQ:.*]], %[[BLOCK:.*]]) =
// CHECK: %[[E0:.*]] = arith.muli %[[BLOCK]], %c16
// CHECK: %[[LEFT:.*]] = arith.subi %c40{{.*}}, %[[E0]]
// CHECK: %[[WIDTH:.*]] = arith.minui %c16{{.*}}, %[[LEFT]]
// CHECK: scf.for %[[T:.*]] =
// CHECK: scf.for %[[J:.*]] = %{{.*}} to %[[WIDTH]]
// CHECK: memref.load %{{.*}}[%[[SEQ]], %[[T]], %{{.*}}] : memref<?x?x40xf32>
// CHECK: memref.load %[[KEYS]]
// CHECK: memref.load %[[KEYS]]
// CHECK: memref.store %{{.*}}, %[[KEYS]]
// CHECK: memref.store %{{.*}}, %[[IDS]]
// CHECK: memref.store %{{.*}}, %[[KEYS]]
// CHECK: memref.store %{{.*}}, %[[IDS]]
// CHECK: scf.for %[[T2:.*]] =
// CHECK: scf.for
// CHECK: memref.load %[[KEYS]]
// CHECK: memref.load %[[IDS]]
// CHECK: memref.store %{{.*}}, %{{.*}}[%[[SEQ]], %[[T2]], %{{.*}}] : memref<?x?x40xi1>
// CHECK-NOT: memref<?x1024xi32>
// CHECK: return
func.func @expert_choice_rows(%l: tensor<?x?x40xf32>) -> tensor<?x?x40xi1> {
  %g, %m = moe.route #moe.expert<capacity = 2> %l : tensor<?x?x40xf32>
  return %m : tensor<?x?x40xi1>
}

// -----

// A capacity from capacity_factor (ceil(T * k / E) at run time) picks the
// way when it runs: slots 1, 2, 4, ... 32, else the columns.
// CHECK-LABEL: func.func @expert_choice_either_way
// CHECK: %[[SMALL:.*]] = arith.cmpi ule, %[[C:.*]], %c32
// CHECK: scf.if %[[SMALL]] {
// CHECK: arith.cmpi ule, %[[C]], %c1
// CHECK: memref.alloc(%{{.*}}) : memref<?x16xi32>
// CHECK: memref.alloc(%{{.*}}) : memref<?x512xi32>
// CHECK: } else {
// CHECK: memref.alloc(%{{.*}}) : memref<?x1024xi32>
// CHECK: return
func.func @expert_choice_either_way(%l: tensor<?x?x40xf32>) -> tensor<?x?x40xi1> {
  %g, %m = moe.route #moe.expert<capacity_factor = 1.0, k = 2> %l : tensor<?x?x40xf32>
  return %m : tensor<?x?x40xi1>
}

// -----

// Expert Choice columns (capacities above 32): a sequence of at least 2^18 scores is selected from
// [B, E, T + 16] copies (rows padded by a cache line), written there and
// copied back (shorter ones are selected in place). Experts are the parallel loop, the
// sequences run inside it; histograms have 4 copies of 256 bins, and no
// rank scratch (columns are never small sets).
// CHECK-LABEL: func.func @expert_choice_columns
// CHECK: memref.alloc(%{{.*}}) : memref<?x1024xi32>
// CHECK-NOT: memref<?x32xi32>
// CHECK: %[[LONG:.*]] = arith.cmpi uge, %{{.*}}, %c262144
// CHECK: scf.if %[[LONG]] {
// CHECK: %[[PADDED:.*]] = arith.addi %{{.*}}, %c16
// CHECK: %[[COLUMNS:.*]] = memref.alloc(%{{.*}}, %[[PADDED]]) : memref<?x8x?xf32>
// CHECK: %[[PICKED:.*]] = memref.alloc(%{{.*}}, %[[PADDED]]) : memref<?x8x?xi1>
// CHECK: memref.store %{{.*}}, %[[COLUMNS]]
// CHECK: scf.parallel (%{{.*}}, %[[EXPERT:.*]]) =
// CHECK: scf.for %[[SEQ:.*]] =
// CHECK: memref.load %[[COLUMNS]][%[[SEQ]], %[[EXPERT]], %{{.*}}]
// CHECK: memref.store %{{.*}}, %[[PICKED]][%[[SEQ]], %[[EXPERT]], %{{.*}}]
// CHECK: memref.load %[[PICKED]]
// CHECK: return
func.func @expert_choice_columns(%l: tensor<?x?x8xf32>) -> tensor<?x?x8xi1> {
  %g, %m = moe.route #moe.expert<capacity = 40> %l : tensor<?x?x8xf32>
  return %m : tensor<?x?x8xi1>
}
