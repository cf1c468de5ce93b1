// RUN: usmoe-opt --help | FileCheck %s

// Every usmoe pass and pipeline is listed with its summary, next to the
// upstream ones.
// CHECK: Available Dialects: {{.*}}moe
// CHECK-DAG: --convert-moe-to-gpu {{.*}}Lower fused moe.route ops to hand-designed GPU kernels
// CHECK-DAG: --convert-moe-to-loops {{.*}}Lower every moe op to scf loops over memrefs
// CHECK-DAG: --moe-fuse-routing {{.*}}Fuse a score op and the selection that consumes it into moe.route
// CHECK-DAG: --usmoe-require-cuda-toolkit {{.*}}Fail with a clear message unless the CUDA toolkit is usable
// CHECK-DAG: --usmoe-to-cpu {{.*}}Lower moe routing on tensors to the LLVM dialect for the CPU
// CHECK-DAG: --usmoe-to-nvvm {{.*}}Lower moe routing to NVVM kernels serialized as PTX, cubin or fatbin
