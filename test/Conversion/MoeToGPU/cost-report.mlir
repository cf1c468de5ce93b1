// The cost model convert-moe-to-gpu records for each kernel, evaluated for
// a shape: kernels in launch order; one 16384 x 64 sequence spreads its
// select over 16384 * 64 / 4096 = 256 blocks, 4 histogram launches, two
// of which recompute the scores from the bf16 logits and the rows' softmax
// max and sum (2 x (2.097 + 0.131) MB) and two read the compacted candidate
// keys (at most a quarter of the set: 2 x 1.049 MB, written once: 1.049 MB
// besides the histograms' 1.049), so the single-block select launches 0 times
// and the score kernel writes only those statistics (0.131 MB, no f32
// scores); it also zeroes the select's workspace and the plan's counts (no
// zeroing launch); the mark launch counts the selection per tile
// of 128 rows (128 tiles) and per chunk of 16 tiles (8 chunks), and its last
// block scans the chunk counts, so the plan only fills (not the single-tile
// kernel). The floor: bf16 logits in (2.097
// MB), gates and mask (5.243), offsets and M = 24576 rows (plan).
// RUN: usmoe-opt %s -moe-fuse-routing -convert-moe-to-gpu -usmoe-gpu-cost-report="shape=B=1,T=16384,M=24576" -o /dev/null | FileCheck %s
// With a 4096-pair sequence the single block runs and the rest launch 0 times;
// the plan's 128 rows are one tile: one launch of plan_1_single.
// RUN: usmoe-opt %s -moe-fuse-routing -convert-moe-to-gpu -usmoe-gpu-cost-report="shape=B=2,T=64,M=192" -o /dev/null | FileCheck %s --check-prefix=SHORT
// RUN: not usmoe-opt %s -moe-fuse-routing -convert-moe-to-gpu -usmoe-gpu-cost-report="shape=B=1,T=16384" -o /dev/null 2>&1 | FileCheck %s --check-prefix=NO-M
// RUN: not usmoe-opt %s -moe-fuse-routing -convert-moe-to-gpu -usmoe-gpu-cost-report="shape=B=one" -o /dev/null 2>&1 | FileCheck %s --check-prefix=BAD
// With 30x the instruction rate the mark is bound by its bytes again.
// RUN: usmoe-opt %s -moe-fuse-routing -convert-moe-to-gpu -usmoe-gpu-cost-report="shape=B=1,T=16384,M=24576 tera-instructions=1000" -o /dev/null | FileCheck %s --check-prefix=FAST-ALU
// RUN: not usmoe-opt %s -moe-fuse-routing -convert-moe-to-gpu -usmoe-gpu-cost-report="shape=B=1 tera-instructions=0" -o /dev/null 2>&1 | FileCheck %s --check-prefix=BAD-RATE

// CHECK: usmoe GPU cost model (B=1,T=16384,M=24576; 3350 GB/s, 132 SMs, 2.0 us per launch)
// CHECK-NEXT: kernel launches grid block MB read MB written GFLOP G instr est. us
// CHECK-NEXT: route_unified_0_decode 0 4096 128 0.000 0.000 0.000 0.000 0.00
// CHECK-NEXT: route_unified_0_scores 1 4096 128 2.097 0.167
// The histogram passes recompute U twice over the 2^20 pairs (120 PTX
// instructions each, the kernel table's score_instructions) and read the
// candidate keys twice (14 each): 0.252 + 0.007 G instructions.
// CHECK-NEXT: route_unified_0_select_histogram 4 256 1024 6.554 2.097 0.000 0.259
// The mark recomputes U once: 0.126 G instructions at 33.5 T a second,
// 3.76 us, more than its 7.672 MB take (2.29 us): 2 us for the launch,
// 3.76, and its last block scanning the 8 x 64 chunk counts alone
// (tail_bytes: 8 * 64 * 8 + 65 * 4 bytes at 3350 / 132 GB/s, 0.17 us; the
// whole 128 x 64 tile counts were 2.59 us).
// CHECK-NEXT: route_unified_0_select_mark 1 256 1024 2.230 5.442 0.000 0.126 5.93
// CHECK-NEXT: route_unified_0_select 0 1 1024 0.000 0.000 0.000 0.000 0.00
// CHECK-NEXT: plan_1_single 0 1 128 0.000 0.000 0.000 0.000 0.00
// CHECK-NEXT: plan_1_fill 1 128 128
// CHECK-NEXT: total 7
// CHECK-NEXT: HBM floor (operands read once, results written once): 8.684 MB
// CHECK-NOT: route

// SHORT: route_unified_0_select_histogram 0
// SHORT: route_unified_0_select 1 2 1024
// SHORT: plan_1_single 1 1 128
// SHORT: plan_1_fill 0
// SHORT: total 3

// NO-M: error: usmoe-gpu-cost-report: {{.*}} = "{{.*}}M{{.*}}": no value for 'M' (give it in shape=...)
// BAD: error: usmoe-gpu-cost-report: shape: 'B=one' is not NAME=<non-negative integer>
// FAST-ALU: route_unified_0_select_mark 1 256 1024 2.230 5.442 0.000 0.126 4.46
// BAD-RATE: error: usmoe-gpu-cost-report: bandwidth-gbs, sms, tensor-tflops and tera-instructions must be positive, launch-us non-negative

func.func @router(%l: tensor<?x?x64xbf16>) -> (tensor<?x?x64xf32>, tensor<?x?x64xi1>, tensor<65xi32>, tensor<?xi32>, tensor<?xf32>) {
  %g, %m = moe.route #moe.unified<k = 1.5> %l : tensor<?x?x64xbf16>
  %o, %i, %w = moe.plan %g, %m : tensor<?x?x64xf32>
  return %g, %m, %o, %i, %w : tensor<?x?x64xf32>, tensor<?x?x64xi1>, tensor<65xi32>, tensor<?xi32>, tensor<?xf32>
}
