// nvgpu.mma.sync m16n8k16 on the GPU emulator: each lane loads its fragments
// at the places PTX's mma.m16n8k16 layout gives them (written out here by
// hand, independently of the emulator's table), the warp multiplies, and D
// comes back in the same layout. A[i][k] = 16 i + k, B picks column n plus
// twice column n + 8, C[i][n] = n / 4: D[i][n] = 48 i + 16 + 3.25 n, so a
// swapped register, row half or column half shows in the numbers.
// RUN: usmoe-opt %s -usmoe-to-gpu-emu | %run_emu 2>&1 | FileCheck %s
// RUN: sed -e 's/bf16/f16/g' %s | usmoe-opt -usmoe-to-gpu-emu | %run_emu 2>&1 | FileCheck %s
// RUN: sed -e 's|%half = arith.constant 32|%half = arith.constant 16|' %s | usmoe-opt -usmoe-to-gpu-emu | %run_emu 2>&1 | FileCheck %s --check-prefix=PARTIAL
// RUN: sed -e 's|threads in (%c32,|threads in (%c48,|' %s | usmoe-opt -usmoe-to-gpu-emu | %run_emu 2>&1 | FileCheck %s --check-prefix=WARP

// CHECK:      [16,   19.25,   22.5,   25.75,   29,   32.25,   35.5,   38.75]
// CHECK-NEXT: [64,   67.25,   70.5,   73.75,   77,   80.25,   83.5,   86.75]
// CHECK:      [400,   403.25,   406.5,   409.75,   413,   416.25,   419.5,   422.75]
// CHECK:      [736,   739.25,   742.5,   745.75,   749,   752.25,   755.5,   758.75]
// CHECK-NOT: usmoe-emu

// PARTIAL: usmoe-emu: error: kernel 'mma' {{.*}}: mma.sync reached by part of a warp (deadlock) at <stdin>:[[#]]:[[#]]: nvgpu.mma.sync; thread (0,0,0) of block (0,0,0) waits for lane 16, which has exited
// WARP: usmoe-emu: error: kernel 'mma' {{.*}}: mma.sync in a partial warp at <stdin>:[[#]]:[[#]]: nvgpu.mma.sync; thread (32,0,0) of block (0,0,0); the warp has 16 lanes; mma.sync needs all 32

module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @mma(%a: memref<16x16xbf16>, %b: memref<16x8xbf16>, %c: memref<16x8xf32>, %d: memref<16x8xf32>) kernel {
      %c1 = arith.constant 1 : index
      %c2 = arith.constant 2 : index
      %c4 = arith.constant 4 : index
      %c8 = arith.constant 8 : index
      %c9 = arith.constant 9 : index
      %c32 = arith.constant 32 : index
      %half = arith.constant 32 : index
      %tid = gpu.thread_id x
      %lane = arith.remui %tid, %c32 : index
      %g = arith.divui %lane, %c4 : index
      %q = arith.remui %lane, %c4 : index
      %g8 = arith.addi %g, %c8 : index
      %k0 = arith.muli %q, %c2 : index
      %k1 = arith.addi %k0, %c1 : index
      %k8 = arith.addi %k0, %c8 : index
      %k9 = arith.addi %k0, %c9 : index
      %a0 = memref.load %a[%g, %k0] : memref<16x16xbf16>
      %a1 = memref.load %a[%g, %k1] : memref<16x16xbf16>
      %a2 = memref.load %a[%g8, %k0] : memref<16x16xbf16>
      %a3 = memref.load %a[%g8, %k1] : memref<16x16xbf16>
      %a4 = memref.load %a[%g, %k8] : memref<16x16xbf16>
      %a5 = memref.load %a[%g, %k9] : memref<16x16xbf16>
      %a6 = memref.load %a[%g8, %k8] : memref<16x16xbf16>
      %a7 = memref.load %a[%g8, %k9] : memref<16x16xbf16>
      %va = vector.from_elements %a0, %a1, %a2, %a3, %a4, %a5, %a6, %a7 : vector<4x2xbf16>
      %b0 = memref.load %b[%k0, %g] : memref<16x8xbf16>
      %b1 = memref.load %b[%k1, %g] : memref<16x8xbf16>
      %b2 = memref.load %b[%k8, %g] : memref<16x8xbf16>
      %b3 = memref.load %b[%k9, %g] : memref<16x8xbf16>
      %vb = vector.from_elements %b0, %b1, %b2, %b3 : vector<2x2xbf16>
      %c0v = memref.load %c[%g, %k0] : memref<16x8xf32>
      %c1v = memref.load %c[%g, %k1] : memref<16x8xf32>
      %c2v = memref.load %c[%g8, %k0] : memref<16x8xf32>
      %c3v = memref.load %c[%g8, %k1] : memref<16x8xf32>
      %vc = vector.from_elements %c0v, %c1v, %c2v, %c3v : vector<2x2xf32>
      %reached = arith.cmpi ult, %lane, %half : index
      scf.if %reached {
        %vd = nvgpu.mma.sync (%va, %vb, %vc) {mmaShape = [16, 8, 16]} : (vector<4x2xbf16>, vector<2x2xbf16>, vector<2x2xf32>) -> vector<2x2xf32>
        %first = arith.cmpi ult, %tid, %c32 : index
        scf.if %first {
          %d0 = vector.extract %vd[0, 0] : f32 from vector<2x2xf32>
          %d1 = vector.extract %vd[0, 1] : f32 from vector<2x2xf32>
          %d2 = vector.extract %vd[1, 0] : f32 from vector<2x2xf32>
          %d3 = vector.extract %vd[1, 1] : f32 from vector<2x2xf32>
          memref.store %d0, %d[%g, %k0] : memref<16x8xf32>
          memref.store %d1, %d[%g, %k1] : memref<16x8xf32>
          memref.store %d2, %d[%g8, %k0] : memref<16x8xf32>
          memref.store %d3, %d[%g8, %k1] : memref<16x8xf32>
        }
      }
      gpu.return
    }
  }

  func.func private @printMemrefF32(memref<*xf32>)

  func.func @main() {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c8 = arith.constant 8 : index
    %c16 = arith.constant 16 : index
    %c32 = arith.constant 32 : index
    %c48 = arith.constant 48 : index
    %zero = arith.constant 0.0 : f32
    %one = arith.constant 1.0 : f32
    %two = arith.constant 2.0 : f32
    %quarter = arith.constant 0.25 : f32
    %a = memref.alloc() : memref<16x16xbf16>
    %b = memref.alloc() : memref<16x8xbf16>
    %c = memref.alloc() : memref<16x8xf32>
    %d = memref.alloc() : memref<16x8xf32>
    scf.for %i = %c0 to %c16 step %c1 {
      scf.for %k = %c0 to %c16 step %c1 {
        %row = arith.muli %i, %c16 : index
        %v = arith.addi %row, %k : index
        %vi = arith.index_cast %v : index to i32
        %vf = arith.sitofp %vi : i32 to bf16
        memref.store %vf, %a[%i, %k] : memref<16x16xbf16>
      }
      scf.for %n = %c0 to %c8 step %c1 {
        %n8 = arith.addi %n, %c8 : index
        %same = arith.cmpi eq, %i, %n : index
        %upper = arith.cmpi eq, %i, %n8 : index
        %v0 = arith.select %same, %one, %zero : f32
        %v = arith.select %upper, %two, %v0 : f32
        %vb = arith.truncf %v : f32 to bf16
        memref.store %vb, %b[%i, %n] : memref<16x8xbf16>
        %ni = arith.index_cast %n : index to i32
        %nf = arith.sitofp %ni : i32 to f32
        %cv = arith.mulf %nf, %quarter : f32
        memref.store %cv, %c[%i, %n] : memref<16x8xf32>
      }
    }
    gpu.launch_func @kernels::@mma blocks in (%c1, %c1, %c1) threads in (%c32, %c1, %c1)
        args(%a : memref<16x16xbf16>, %b : memref<16x8xbf16>, %c : memref<16x8xf32>, %d : memref<16x8xf32>)
    %u = memref.cast %d : memref<16x8xf32> to memref<*xf32>
    call @printMemrefF32(%u) : (memref<*xf32>) -> ()
    memref.dealloc %a : memref<16x16xbf16>
    memref.dealloc %b : memref<16x8xbf16>
    memref.dealloc %c : memref<16x8xf32>
    memref.dealloc %d : memref<16x8xf32>
    return
  }
}
