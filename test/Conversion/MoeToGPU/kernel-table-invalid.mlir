// The kernel table is checked against the kernels before the cost report
// uses it (convert-moe-to-gpu checks the table it writes the same way), and
// each #moe.kernel entry on its own when it is parsed.
// RUN: usmoe-opt %s -usmoe-gpu-cost-report="shape=B=1,T=4" -split-input-file -verify-diagnostics

// expected-error @+1 {{'grid' = "ceildiv(B * T": expected ',' in ceildiv(...)}}
module attributes {gpu.container_module, usmoe.kernels = {k = #moe.kernel<kind = "zero", args = [memref<?xi32>], block = [32, 1, 1], grid = "ceildiv(B * T", launches = "1", bytes_read = "0", bytes_written = "4 * B", info = {}>}} {
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
module attributes {gpu.container_module, usmoe.kernels = {k = #moe.kernel<kind = "zero", args = [memref<?xf32>], block = [32, 1, 1], grid = "1", launches = "1", bytes_read = "0", bytes_written = "0", info = {}>}} {
  gpu.module @usmoe_kernels {
    gpu.func @k(%a: memref<?xi32>) kernel attributes {known_block_size = array<i32: 32, 1, 1>} {
      gpu.return
    }
  }
}

// -----

// expected-error @+1 {{'usmoe.kernels' entry 'k': 'block' must be the kernel's known block size}}
module attributes {gpu.container_module, usmoe.kernels = {k = #moe.kernel<kind = "zero", args = [memref<?xi32>], block = [64, 1, 1], grid = "1", launches = "1", bytes_read = "0", bytes_written = "0", info = {}>}} {
  gpu.module @usmoe_kernels {
    gpu.func @k(%a: memref<?xi32>) kernel attributes {known_block_size = array<i32: 32, 1, 1>} {
      gpu.return
    }
  }
}

// -----

// expected-error @+1 {{'usmoe.kernels' entry 'gone': no such kernel in @usmoe_kernels}}
module attributes {gpu.container_module, usmoe.kernels = {gone = #moe.kernel<kind = "zero", args = [], block = [32, 1, 1], grid = "1", launches = "1", bytes_read = "0", bytes_written = "0", info = {}>}} {
  gpu.module @usmoe_kernels {
  }
}

// -----

// expected-error @+1 {{'usmoe.kernels' entry 'k': not a #moe.kernel}}
module attributes {gpu.container_module, usmoe.kernels = {k = {kind = "zero"}}} {
  gpu.module @usmoe_kernels {
    gpu.func @k(%a: memref<?xi32>) kernel attributes {known_block_size = array<i32: 32, 1, 1>} {
      gpu.return
    }
  }
}

// -----

// expected-error @+1 {{'kind' must not be empty}}
module attributes {usmoe.kernels = {k = #moe.kernel<kind = "", args = [], block = [32, 1, 1], grid = "1", launches = "1", bytes_read = "0", bytes_written = "0", info = {}>}} {
}

// -----

// expected-error @+1 {{'block' must be three positive sizes}}
module attributes {usmoe.kernels = {k = #moe.kernel<kind = "zero", args = [], block = [32, 0], grid = "1", launches = "1", bytes_read = "0", bytes_written = "0", info = {}>}} {
}

// -----

// expected-error @+1 {{'launches' = "1 +": unexpected end}}
module attributes {usmoe.kernels = {k = #moe.kernel<kind = "zero", args = [], block = [32, 1, 1], grid = "1", launches = "1 +", bytes_read = "0", bytes_written = "0", info = {}>}} {
}

// -----

// expected-error @+1 {{'tail_bytes' = "4 *": unexpected end}}
module attributes {gpu.container_module, usmoe.kernels = {k = #moe.kernel<kind = "zero", args = [memref<?xi32>], block = [32, 1, 1], grid = "1", launches = "1", bytes_read = "0", bytes_written = "0", tail_bytes = "4 *", info = {}>}} {
  gpu.module @usmoe_kernels {
    gpu.func @k(%a: memref<?xi32>) kernel attributes {known_block_size = array<i32: 32, 1, 1>} {
      gpu.return
    }
  }
}

// -----

// expected-error @+1 {{'instructions' = "T * * 3": }}
module attributes {gpu.container_module, usmoe.kernels = {k = #moe.kernel<kind = "zero", args = [memref<?xi32>], block = [32, 1, 1], grid = "1", launches = "1", bytes_read = "0", bytes_written = "0", instructions = "T * * 3", info = {}>}} {
  gpu.module @usmoe_kernels {
    gpu.func @k(%a: memref<?xi32>) kernel attributes {known_block_size = array<i32: 32, 1, 1>} {
      gpu.return
    }
  }
}
