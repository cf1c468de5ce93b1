# -*- Python -*-
"""lit configuration of the usmoe regression suite."""

import os
import shutil
import subprocess

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "USMOE"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["Inputs", "lib", "CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.usmoe_obj_root, "test")

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

# Catch unused CHECK prefixes and leaking FileCheck variables.
config.environment["FILECHECK_OPTS"] = (
    "-enable-var-scope --allow-unused-prefixes=false"
)

# USMOE_OPT_CHECK_ROUNDTRIP=1 makes every usmoe-opt run also check that its
# output prints and parses back to the same IR.
usmoe_opt = ToolSubst("usmoe-opt", unresolved="fatal")
if os.environ.get("USMOE_OPT_CHECK_ROUNDTRIP") == "1":
    usmoe_opt = ToolSubst("usmoe-opt", extra_args=["--verify-roundtrip"],
                          unresolved="fatal")
llvm_config.add_tool_substitutions(
    [usmoe_opt, "usmoe-extract-binary", "usmoe-runtime-info", "mlir-opt", "mlir-runner"],
    [config.usmoe_tools_dir, config.llvm_tools_dir],
)

config.substitutions.append(("%mlir_lib_dir", config.llvm_lib_dir))
# Runs an LLVM-dialect module's @main on the CPU with the printing utilities.
runner_libs = ",".join(
    os.path.join(config.llvm_lib_dir, "lib%s%s" % (name, config.llvm_shlib_ext))
    for name in ("mlir_c_runner_utils", "mlir_runner_utils"))
config.substitutions.append(
    ("%run_cpu", "mlir-runner -e main -entry-point-result=void -shared-libs=" + runner_libs))
# Runs it with the GPU emulator too (code lowered by usmoe-to-gpu-emu).
emulator = os.path.join(config.usmoe_obj_root, "lib", "libusmoe_gpu_emulator" + config.llvm_shlib_ext)
config.substitutions.append(
    ("%run_emu", "mlir-runner -e main -entry-point-result=void -shared-libs=" + runner_libs
     + "," + emulator))
# Runs it with the oneDNN CPU runtime (code lowered with expert-gemm=onednn).
cpu_runtime = os.path.join(config.usmoe_obj_root, "lib", "libusmoe_cpu_runtime" + config.llvm_shlib_ext)
if os.path.exists(cpu_runtime):
    config.available_features.add("onednn")
config.substitutions.append(
    ("%run_onednn", "mlir-runner -e main -entry-point-result=void -shared-libs=" + runner_libs
     + "," + cpu_runtime))
# Runs it with LLVM's OpenMP runtime (code lowered with usmoe-to-cpu{openmp}).
if config.usmoe_openmp_runtime:
    config.available_features.add("openmp")
config.substitutions.append(
    ("%run_openmp", "mlir-runner -e main -entry-point-result=void -shared-libs=" + runner_libs
     + "," + config.usmoe_openmp_runtime))
config.substitutions.append(("%shlibext", config.llvm_shlib_ext))
config.substitutions.append(("%usmoe_src_root", config.usmoe_src_root))
config.substitutions.append(("%usmoe_obj_root", config.usmoe_obj_root))

# ptxas: present on every machine with the CUDA toolkit (no GPU needed).
cuda_root = config.usmoe_cuda_root or os.environ.get("CUDA_ROOT", "/usr/local/cuda")
if os.path.exists(os.path.join(cuda_root, "bin", "ptxas")):
    config.available_features.add("ptxas")
    config.substitutions.append(("%cuda_root", cuda_root))

# cuda-gpu: only where nvidia-smi lists a device. CI has none; tests that
# launch kernels carry `REQUIRES: cuda-gpu` and report UNSUPPORTED there.
if shutil.which("nvidia-smi"):
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True,
                             text=True, timeout=20)
        if out.returncode == 0 and "GPU" in out.stdout:
            config.available_features.add("cuda-gpu")
    except (OSError, subprocess.SubprocessError):
        pass
