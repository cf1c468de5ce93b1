// Targets LLVM's NVPTX backend would crash or abort on, or that CUDA 13
// cannot build for, are clear errors before any lowering (exit 1).
// RUN: not usmoe-opt %s -usmoe-to-nvvm=chip= 2>&1 | FileCheck %s --check-prefix=EMPTY
// RUN: not usmoe-opt %s -usmoe-to-nvvm=chip=sm_xyz 2>&1 | FileCheck %s --check-prefix=NAME
// RUN: not usmoe-opt %s -usmoe-to-nvvm=chip=sm_50 2>&1 | FileCheck %s --check-prefix=OLD
// RUN: not usmoe-opt %s -usmoe-to-nvvm=features=ptx80 2>&1 | FileCheck %s --check-prefix=FEATURES
// RUN: not usmoe-opt %s -usmoe-to-nvvm=format=bogus 2>&1 | FileCheck %s --check-prefix=FORMAT
// RUN: not usmoe-opt %s -usmoe-to-nvvm=opt-level=7 2>&1 | FileCheck %s --check-prefix=OPT

// EMPTY: error: chip must be sm_XY (a CUDA architecture such as sm_90), got ''
// NAME: error: chip must be sm_XY (a CUDA architecture such as sm_90), got 'sm_xyz'
// OLD: error: chip sm_50 is older than sm_75, the oldest architecture CUDA 13 supports
// FEATURES: error: features must be +ptxNN (a PTX ISA version such as +ptx80), got 'ptx80'
// FORMAT: error: format must be isa, bin, fatbin or llvm, got 'bogus'
// OPT: error: opt-level must be in [0, 3], got 7
// EMPTY-NOT: gpu.binary
// OLD-NOT: gpu.binary

func.func @router(%l: tensor<?x?x8xf32>) -> (tensor<?x?x8xf32>, tensor<?x?x8xi1>) {
  %g, %m = moe.route #moe.token<k = 2> %l : tensor<?x?x8xf32>
  return %g, %m : tensor<?x?x8xf32>, tensor<?x?x8xi1>
}
