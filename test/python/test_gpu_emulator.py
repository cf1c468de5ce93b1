"""The GPU emulator from Python (USMOE_GPU_EMULATOR=1): the mode is visible,
failed checks are RuntimeErrors naming the kernel, the check and the IR
location, IR the emulator cannot run is a ValueError at compile time, and
empty inputs launch nothing."""

import re

import numpy as np
import pytest

import usmoe
from usmoe import reference

RACY = """
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @last_writer_wins(%out: memref<1xi32>) kernel {
      %c0 = arith.constant 0 : index
      %t = gpu.thread_id x
      %v = arith.index_cast %t : index to i32
      memref.store %v, %out[%c0] : memref<1xi32>
      gpu.return
    }
  }
  func.func @run(%x: tensor<1xi32>) -> tensor<1xi32> {
    %c1 = arith.constant 1 : index
    %c32 = arith.constant 32 : index
    %out = bufferization.to_buffer %x : tensor<1xi32> to memref<1xi32>
    %copy = memref.alloc() : memref<1xi32>
    memref.copy %out, %copy : memref<1xi32> to memref<1xi32>
    gpu.launch_func @kernels::@last_writer_wins blocks in (%c1, %c1, %c1)
        threads in (%c32, %c1, %c1) args(%copy : memref<1xi32>)
    %r = bufferization.to_tensor %copy restrict : memref<1xi32> to tensor<1xi32>
    return %r : tensor<1xi32>
  }
}
"""


@pytest.fixture
def emulated(monkeypatch):
    monkeypatch.setenv("USMOE_GPU_EMULATOR", "1")
    monkeypatch.delenv("USMOE_EMU_SEED", raising=False)


def test_cache_info_names_where_cuda_runs(monkeypatch):
    monkeypatch.setenv("USMOE_GPU_EMULATOR", "1")
    assert usmoe.cache_info()["gpu"] == "emulator"
    monkeypatch.setenv("USMOE_GPU_EMULATOR", "0")
    assert usmoe.cache_info()["gpu"] == "cuda"


def test_a_race_is_a_runtime_error_naming_kernel_check_and_location(emulated):
    fn = usmoe.compile(RACY, target="cuda", entry="run")
    with pytest.raises(RuntimeError) as error:
        fn([np.zeros(1, np.int32)])
    message = str(error.value)
    assert "kernel 'last_writer_wins'" in message
    assert "data race on global memory" in message
    assert "<usmoe>:8:7: memref.store" in message
    # The emulator is usable again afterwards.
    ok = usmoe.route(np.zeros((1, 3, 4), np.float32), mode="token", k=1, device="cuda")
    assert ok.mask.sum() == 3


@pytest.mark.parametrize("body, launch, check", [
    # An index one past the end (no clamp).
    ("""%v = arith.index_cast %t : index to i32
      memref.store %v, %out[%t] : memref<1xi32>""", "threads in (%c32, %c1, %c1)",
     r"out-of-bounds access at <usmoe>:8:7: memref.store; thread \(1,0,0\) of block "
     r"\(0,0,0\); index 1 of dimension 0 is outside \[0, 1\)"),
    # A barrier only thread 0 reaches.
    ("""%first = arith.cmpi eq, %t, %c0 : index
      scf.if %first {
        gpu.barrier
      }""", "threads in (%c32, %c1, %c1)", "barrier reached by part of the block at "
     r"<usmoe>:9:9: gpu.barrier"),
    # More threads than a block can have.
    ("", "threads in (%c2048, %c1, %c1)", r"launch beyond hardware limits at "
     r"<usmoe>:\d+:5: gpu.launch_func; block.x = 2048 \(limit 1024\)"),
])
def test_failed_checks_end_the_call_with_a_runtime_error(emulated, body, launch, check):
    ir = RACY.replace("""%v = arith.index_cast %t : index to i32
      memref.store %v, %out[%c0] : memref<1xi32>""", body)
    ir = ir.replace("threads in (%c32, %c1, %c1)", launch)
    ir = ir.replace("%c32 = arith.constant 32 : index",
                    "%c32 = arith.constant 32 : index\n    %c2048 = arith.constant 2048 : index")
    fn = usmoe.compile(ir, target="cuda", entry="run")
    with pytest.raises(RuntimeError, match="the emulated GPU function failed") as error:
        fn([np.zeros(1, np.int32)])
    assert re.search(check, str(error.value)), str(error.value)


def test_ops_the_emulator_cannot_run_are_compile_errors(emulated):
    ir = RACY.replace("memref.store %v, %out[%c0] : memref<1xi32>",
                      "%r = gpu.subgroup_reduce add %v : (i32) -> i32")
    with pytest.raises(ValueError, match="'gpu.subgroup_reduce' op is not modeled by the GPU "
                                         "emulator"):
        usmoe.compile(ir, target="cuda", entry="run")


@pytest.mark.parametrize("opts", [dict(mode="token", k=2), dict(mode="unified", k=1.5),
                                  dict(mode="expert", capacity=1),
                                  dict(mode="unified", budget=0)])
def test_empty_inputs_launch_nothing(opts, gpu_path):
    for shape in ((1, 0, 8), (0, 5, 8), (2, 1, 8)):
        logits = np.random.default_rng(0).normal(size=shape).astype(np.float32)
        if opts.get("capacity") and shape[1] == 0:
            continue
        got = usmoe.route(logits, device="cuda", **opts)
        want = reference.route(logits, **{("expert_score_kind" if k == "expert_score" else k): v
                                           for k, v in opts.items()})
        np.testing.assert_array_equal(got.mask, want.mask)
        np.testing.assert_array_equal(got.expert_offsets, want.expert_offsets)
        np.testing.assert_array_equal(got.token_ids, want.token_ids)
