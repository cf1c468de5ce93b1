"""The packing half of scripts/gpu-check.sh runs anywhere (CI included); the
run half reports a missing GPU cleanly."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
        assert (d / "usmoe_kernels.cubin").stat().st_size > 0
        ptx = (d / "usmoe_kernels.ptx").read_bytes()
        meta = json.loads((d / "usmoe_kernels.json").read_text())
        for name, kernel in meta["kernels"].items():
            assert f".entry {name}(".encode() in ptx
        modes.add(case["mode"])
        if case["mode"] == "layer":
            kinds = {k["kind"] for k in meta["kernels"].values()}
            assert {"plan_count", "plan_scan", "plan_fill", "dispatch", "expert_ffn",
                    "combine"} <= kinds
            continue
        for name, kernel in meta["kernels"].items():
            assert kernel["experts"] == case["experts"]
            # memref params: 3 + 2 * rank each (rank 3 here), plus the budget
            # (select) or the [E] bias memref (5 params, sigmoid_bias).
            extra = {"route_token_bias": 5}.get(kernel["kind"],
                                                1 if kernel["kind"].startswith("select_") else 0)
            assert len(kernel["params"]) % 9 == extra
        for inp in case["inputs"]:
            mask = np.load(d / f"mask{inp['index']}.npy")
            assert mask.shape == tuple(inp["shape"])
            if case["mode"] == "token":
                assert (mask.sum(axis=-1) == case["options"]["k"]).all()
        if case["options"].get("bias"):
            assert (d / "bias.npy").exists()
            assert meta["kernels"]["route_token_0"]["kind"] == "route_token_bias"
        experts.add(case["experts"])
    assert {8, 60, 64, 128, 256, 384, 512} <= experts
    assert modes == {"token", "expert", "unified", "layer"}


def test_run_half_without_gpu_fails_cleanly(pack):
    if shutil.which("nvidia-smi"):
        pytest.skip("a GPU may be present")
    run = subprocess.run(["/usr/bin/python3", str(pack / "run.py")], capture_output=True, text=True,
                         env={**os.environ, "LD_LIBRARY_PATH": ""})
    assert run.returncode == 2
    assert "CUDA driver not available" in run.stderr
    assert "Traceback" not in run.stderr
