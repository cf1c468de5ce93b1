"""The packing half of scripts/gpu-check.sh runs anywhere (CI included); the
run half reports a missing GPU cleanly."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The pack takes a minute to build: with pytest-xdist, this module's tests
# run on one worker (--dist loadgroup), which builds it once.
pytestmark = pytest.mark.xdist_group("gpu_check_pack")


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    if not os.path.exists("/usr/local/cuda/nvvm/libdevice/libdevice.10.bc"):
        pytest.skip("no CUDA toolkit to compile kernels with")
    out = tmp_path_factory.mktemp("gpu") / "pack"
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "gpu-check.sh"), "pack", str(out)],
                   check=True, capture_output=True, text=True)
    return out


def test_pack_has_everything_a_gpu_machine_needs(pack):
    manifest = json.loads((pack / "manifest.json").read_text())
    assert len(manifest["cases"]) >= 8
    assert (pack / "libusmoe_cuda_runtime.so").exists() and (pack / "run.py").exists()
    experts, modes = set(), set()
    for case in manifest["cases"]:
        d = pack / case["dir"]
        ptx = (d / "usmoe_kernels.ptx").read_bytes()
        meta = json.loads((d / "usmoe_kernels.json").read_text())
        for name, kernel in meta["kernels"].items():
            assert f".entry {name}(".encode() in ptx
        modes.add(case["mode"])
        if case["mode"] == "layer":
            kinds = {k["kind"] for k in meta["kernels"].values()}
            assert {"plan_single", "plan_fill", "dispatch", "expert_ffn",
                    "combine"} <= kinds
            continue
        kinds = {k["kind"] for k in meta["kernels"].values()}
        # A route's plan: one block for one tile of rows, else fill (Token
        # Choice counts and scans in a launch before it; the other routers'
        # select kernels count).
        assert {"plan_single", "plan_fill"} <= kinds
        assert ("plan_count_scan" in kinds) == (case["mode"] == "token")
        # Token Choice writes its top-k lists in the route kernel unless it
        # ranks by biased scores or k > 32: then a topk_list kernel does.
        separate = case["mode"] == "token" and (
            case["options"].get("bias") or case["options"]["k"] > 32)
        assert ("topk_list" in kinds) == bool(separate)
        for kernel in meta["kernels"].values():
            if kernel["kind"] == "route_token":
                assert kernel["lists"] == (not separate)
        for name, kernel in meta["kernels"].items():
            assert kernel.get("experts", case["experts"]) == case["experts"]
            # The launch ABI: a memref argument is 3 + 2 * rank parameters
            # (pointers, offset, sizes, strides), an index one.
            def params_of(arg):
                if not arg.startswith("memref<"):
                    return 1
                rank = len(arg[len("memref<"):].split(",")[0].split("x")) - 1
                return 3 + 2 * rank
            assert len(kernel["params"]) == sum(params_of(a) for a in kernel["args"]), name
        for inp in case["inputs"]:
            mask = np.load(d / f"mask{inp['index']}.npy")
            assert mask.shape == tuple(inp["shape"])
            ids = np.load(d / f"ids{inp['index']}.npy")
            assert ids.size == mask.sum()
            if case["mode"] == "token":
                assert (mask.sum(axis=-1) == case["options"]["k"]).all()
                topk = np.load(d / f"topk_ids{inp['index']}.npy")
                assert topk.shape == (mask.shape[0] * mask.shape[1], case["options"]["k"])
        if case["options"].get("bias"):
            assert (d / "bias.npy").exists()
            assert meta["kernels"]["route_token_0"]["kind"] == "route_token_bias"
        experts.add(case["experts"])
    assert {8, 60, 64, 128, 256, 384, 512} <= experts
    # Every case's host code as a library that runs without MLIR: the
    # packed entry usmoe_rt_host_call takes, the kernels launched through
    # the runtime, failed checks going to the runtime instead of abort().
    for case in manifest["cases"]:
        entry = "layer" if case["mode"] == "layer" else "router"
        library = pack / case["dir"] / case["host"]["library"]
        symbols = subprocess.run(["nm", "-D", str(library)], capture_output=True, text=True,
                                 check=True).stdout
        assert f"T _usmoe_packed_{entry}" in symbols and " U mgpuLaunchKernel" in symbols
        assert " U usmoe_rt_check_abort" in symbols and " U abort" not in symbols
        assert case["host"]["packed"] == f"_usmoe_packed_{entry}"
    assert modes == {"token", "expert", "unified", "layer"}
    # The Python API's half: the package and its sm_90 kernels, precompiled.
    assert (pack / "python" / "usmoe" / "api.py").exists() and (pack / "api_check.py").exists()
    cached = sorted(p.suffix for p in (pack / "kernel-cache").iterdir())
    assert len(cached) >= 12 and set(cached) == {".so", ".json"}


def test_run_half_without_gpu_fails_cleanly(pack):
    if shutil.which("nvidia-smi"):
        pytest.skip("a GPU may be present")
    run = subprocess.run(["/usr/bin/python3", str(pack / "run.py")], capture_output=True, text=True,
                         env={**os.environ, "LD_LIBRARY_PATH": ""})
    assert run.returncode == 2
    assert "CUDA driver not available" in run.stderr
    assert "Traceback" not in run.stderr


def test_run_half_drives_every_kernel_through_the_fake_driver(pack):
    """With the fake libcuda.so.1 (no GPU, launches run nothing) run.py goes
    through every case's host library, and since nothing is computed the
    comparisons fail (exit 1)."""
    fake = os.path.join(ROOT, "build", "test", "fake-cuda")
    if not os.path.exists(os.path.join(fake, "libcuda.so.1")):
        pytest.skip("the fake driver is not built")
    run = subprocess.run(["/usr/bin/python3", str(pack / "run.py")], capture_output=True,
                         text=True, env={**os.environ, "LD_LIBRARY_PATH": fake}, timeout=600)
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    assert run.returncode == 1
    lines = run.stdout.splitlines()
    assert lines[0] == "device: usmoe fake CUDA driver (sm_90)"
    manifest = json.loads((pack / "manifest.json").read_text())
    rows = [line for line in lines if line.endswith(("| ok |", "| FAIL |"))]
    # Each case once, through the compiler's own host code (the packed
    # library, as a stream call).
    assert [row.split(" | ")[0][2:] for row in rows] == [c["dir"] for c in manifest["cases"]]
    assert all(row.endswith("| FAIL |") for row in rows)


def test_api_check_without_torch_gpu_says_so(pack):
    if shutil.which("nvidia-smi"):
        pytest.skip("a GPU may be present")
    run = subprocess.run(["/usr/bin/python3", str(pack / "api_check.py"), "run", str(pack)],
                         capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(pack / "python")})
    assert run.returncode == 2 and "no PyTorch with a GPU" in run.stderr


def test_packed_cases_pass_on_the_gpu_emulator(pack):
    """Every packed case (routers and the layer, in order and under a
    schedule seed) on the GPU emulator, with run.py's tolerances: a GPU run
    only confirms what CI already checked."""
    out = subprocess.run(["bash", os.path.join(ROOT, "scripts", "gpu-check.sh"), "emulate",
                          str(pack)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [line for line in out.stdout.splitlines()
            if line.startswith(("| case", "| layer")) and "GPU emulator" not in line]
    manifest = json.loads((pack / "manifest.json").read_text())
    assert len(rows) == 2 * len(manifest["cases"])
    assert all(row.endswith("| ok |") for row in rows)


def test_packed_host_code_runs_as_a_stream_call_without_mlir(pack):
    """A packed router's host library, loaded with nothing but the packed
    runtime and usmoe_cuda.py (as on the GPU machine) and driven by the fake
    driver: the compiler's launch sequence on the caller's stream, no
    synchronization, the plan sized from the budget."""
    fake = os.path.join(ROOT, "build", "test", "fake-cuda")
    if not os.path.exists(os.path.join(fake, "libcuda.so.1")):
        pytest.skip("the fake driver is not built")
    manifest = json.loads((pack / "manifest.json").read_text())
    case = next(c for c in manifest["cases"]
                if c["mode"] == "unified" and c["experts"] == 8)
    script = f"""
import ctypes, json, sys
import numpy as np
sys.path.insert(0, {str(pack)!r})
import usmoe_cuda as cuda
drv = ctypes.CDLL("libcuda.so.1")
drv.fake_cuda_launch_kernel.restype = ctypes.c_char_p
drv.fake_cuda_launch_stream.restype = ctypes.c_size_t
case = {case!r}
host = case["host"]
fn = cuda.HostFunction({str(pack)!r} + "/" + case["dir"] + "/" + host["library"], host)
x = np.zeros((2, 7, 8), np.float32)
drv.fake_cuda_reset()
out = fn.call_device([(x.ctypes.data, [2, 7, 8])], stream=0x77)
n = drv.fake_cuda_counter(b"launch")
print(json.dumps(dict(
    launches=[(drv.fake_cuda_launch_kernel(i).decode(), drv.fake_cuda_launch_stream(i))
              for i in range(n)],
    syncs=drv.fake_cuda_counter(b"stream_sync") + drv.fake_cuda_counter(b"ctx_sync"),
    shapes=[shape for _, _, shape in out])))
"""
    run = subprocess.run(["/usr/bin/python3", "-c", script], capture_output=True, text=True,
                         env={**os.environ, "LD_LIBRARY_PATH": fake,
                              "USMOE_CUDA_RUNTIME": str(pack / "libusmoe_cuda_runtime.so")},
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    r = json.loads(run.stdout.strip().splitlines()[-1])
    # 14 rows: the plan is one tile, one launch.
    assert [name for name, _ in r["launches"]] == [
        "route_unified_0_scores", "route_unified_0_select", "plan_1_single"]
    assert {stream for _, stream in r["launches"]} == {0x77}
    assert r["syncs"] == 0
    k = case["options"]["k"]
    m = 2 * int(k * 7)
    assert r["shapes"] == [[2, 7, 8], [2, 7, 8], [9], [m], [m]]
