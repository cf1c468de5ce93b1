// The kernel table is checked against the kernels before the cost report
// uses it (convert-moe-to-gpu checks the table it writes the same way).
// RUN: usmoe-opt %s -usmoe-gpu-cost-report="shape=B=1,T=4" -split-input-file -verify-diagnostics

// expected-error @+1 {{'usmoe.kernels' entry 'k': 'grid' = "ceildiv(B * T": expected ',' in ceildiv(...)}}
module attributes {gpu.container_module, usmoe.kernels = {k = {args = [memref<?xi32>], block = array<i32: 32, 1, 1>, kind = "zero", grid = "ceildiv(B * T", launches = "1", bytes_read = "0", bytes_written = "4 * B"}}} {
  gpu.module @usmoe_kernels {
    gpu.func @k(%a: memref<?xi32>) kernel attributes {known_block_size = array<i32: 32, 1, 1>} {
      gpu.return
    }
  }
}

// -----

// expected-error @+1 {{'usmoe.kernels' has no entry for kernel @k}}
module attributes {gpu.container_module, usmoe.kernels = {}} {
  gpu.module @usmoe_kernels {
    gpu.func @k(%a: memref<?xi32>) kernel attributes {known_block_size = array<i32: 32, 1, 1>} {
      gpu.return
    }
  }
}

// -----

// expected-error @+1 {{'usmoe.kernels' entry 'k': 'args' must list the kernel's argument types}}
module attributes {gpu.container_module, usmoe.kernels = {k = {args = [memref<?xf32>], block = array<i32: 32, 1, 1>, kind = "zero", grid = "1", launches = "1", bytes_read = "0", bytes_written = "0"}}} {
  gpu.module @usmoe_kernels {
    gpu.func @k(%a: memref<?xi32>) kernel attributes {known_block_size = array<i32: 32, 1, 1>} {
      gpu.return
    }
  }
}

// -----

// expected-error @+1 {{'usmoe.kernels' entry 'gone': no such kernel in @usmoe_kernels}}
module attributes {gpu.container_module, usmoe.kernels = {gone = {kind = "zero"}}} {
  gpu.module @usmoe_kernels {
  }
}

// -----

// expected-error @+1 {{'usmoe.kernels' entry 'k': 'launches' must be a shape expression string}}
module attributes {gpu.container_module, usmoe.kernels = {k = {args = [memref<?xi32>], block = array<i32: 32, 1, 1>, kind = "zero", grid = "1", launches = 1 : i64, bytes_read = "0", bytes_written = "0"}}} {
  gpu.module @usmoe_kernels {
    gpu.func @k(%a: memref<?xi32>) kernel attributes {known_block_size = array<i32: 32, 1, 1>} {
      gpu.return
    }
  }
}
