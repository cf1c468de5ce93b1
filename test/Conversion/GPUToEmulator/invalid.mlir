// RUN: usmoe-opt %s -split-input-file -convert-gpu-to-emulator -verify-diagnostics

// Ops the emulator does not model are errors that name the op, never a
// silent pass-through.
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @k(%out: memref<1xi32>) kernel {
      %c0 = arith.constant 0 : index
      %one = arith.constant 1 : i32
      // expected-error @+1 {{'gpu.subgroup_reduce' op is not modeled by the GPU emulator}}
      %r = gpu.subgroup_reduce add %one : (i32) -> i32
      memref.store %r, %out[%c0] : memref<1xi32>
      gpu.return
    }
  }
}

// -----

module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @k(%x: f64) kernel {
      %w = arith.constant 32 : i32
      %o = arith.constant 1 : i32
      // expected-error @+1 {{'gpu.shuffle' op of 'f64' is not modeled by the GPU emulator (i32 and f32 are)}}
      %s, %v = gpu.shuffle xor %x, %o, %w : f64
      gpu.return
    }
  }
}

// -----

// Warp matrix ops: only m16n8k16 with f16/bf16 operands and f32
// accumulators (the PTX fragment layout the emulator implements).
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @k(%a: vector<4x2xf16>, %b: vector<2x2xf16>, %c: vector<2x2xf16>) kernel {
      // expected-error @+1 {{'nvgpu.mma.sync' op is not modeled by the GPU emulator (it runs m16n8k16 with f16 or bf16 operands and f32 accumulators)}}
      %d = nvgpu.mma.sync (%a, %b, %c) {mmaShape = [16, 8, 16]} : (vector<4x2xf16>, vector<2x2xf16>, vector<2x2xf16>) -> vector<2x2xf16>
      gpu.return
    }
  }
}

// -----

// Memory touched by an op the checker cannot see.
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @k(%a: memref<4xi32>, %b: memref<4xi32>) kernel {
      // expected-error @+1 {{'memref.copy' op touches memory in a way the GPU emulator does not check}}
      memref.copy %a, %b : memref<4xi32> to memref<4xi32>
      gpu.return
    }
  }
}

// -----

module attributes {gpu.container_module} {
  gpu.module @kernels {
    // expected-error @+1 {{is a device function, which the GPU emulator does not model yet}}
    gpu.func @helper() {
      gpu.return
    }
  }
}

// -----

module attributes {gpu.container_module} {
  func.func @host(%a: memref<4xi32>, %b: memref<4xi32>) {
    // expected-error @+1 {{'gpu.memcpy' op is not modeled by the GPU emulator}}
    gpu.memcpy %a, %b : memref<4xi32>, memref<4xi32>
    return
  }
}

// -----

module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @k() kernel {
      // expected-error @+1 {{'nvvm.read.ptx.sreg.tid.x' op is not modeled by the GPU emulator}}
      %t = nvvm.read.ptx.sreg.tid.x : i32
      gpu.return
    }
  }
}
