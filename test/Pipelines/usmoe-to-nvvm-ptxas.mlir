// Every kernel assembles for sm_90 with no spills; cubin and fatbin come out,
// and cubins for the other architectures usmoe.route(device="cuda") targets
// (Ampere, Blackwell: the chip and PTX version of cuda.target_for_device).
// REQUIRES: ptxas
// RUN: rm -rf %t && usmoe-opt %S/usmoe-to-nvvm.mlir -usmoe-to-nvvm | usmoe-extract-binary -o %t
// RUN: %cuda_root/bin/ptxas -arch=sm_90 -v %t/usmoe_kernels.ptx -o %t/check.cubin 2>&1 | FileCheck %s
// RUN: usmoe-opt %S/usmoe-to-nvvm.mlir -usmoe-to-nvvm=format=bin | usmoe-extract-binary -o %t/bin
// RUN: test -s %t/bin/usmoe_kernels.cubin
// RUN: usmoe-opt %S/usmoe-to-nvvm.mlir -usmoe-to-nvvm=format=fatbin | usmoe-extract-binary -o %t/fat
// RUN: test -s %t/fat/usmoe_kernels.fatbin
// RUN: usmoe-opt %S/usmoe-to-nvvm.mlir "-usmoe-to-nvvm=chip=sm_80 features=+ptx80 format=bin" | usmoe-extract-binary -o %t/sm80
// RUN: test -s %t/sm80/usmoe_kernels.cubin
// RUN: usmoe-opt %S/usmoe-to-nvvm.mlir "-usmoe-to-nvvm=chip=sm_120 features=+ptx88 format=bin" | usmoe-extract-binary -o %t/sm120
// RUN: test -s %t/sm120/usmoe_kernels.cubin

// Every one of the 39 kernels, none with a stack frame or a spill.
// CHECK: Compiling entry function
// CHECK-NOT: {{[1-9][0-9]*}} bytes {{stack frame|spill}}
// CHECK-COUNT-39: 0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
// CHECK-NOT: {{[1-9][0-9]*}} bytes {{stack frame|spill}}
