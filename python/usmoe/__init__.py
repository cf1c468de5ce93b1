"""usmoe: a compiler for Mixture-of-Experts routing (Token Choice, Expert
Choice and USMoE's unified router), built on MLIR.

    import usmoe
    plan = usmoe.route(logits, mode="unified", k=1.5)
    plan.gates, plan.expert_offsets, plan.token_ids, plan.weights
"""

try:
    import numpy  # noqa: F401
except ImportError as error:  # e.g. a pyenv or venv python instead of Debian's
    from ._native_loader import wrong_interpreter_message
    raise ImportError(wrong_interpreter_message("NumPy is missing")) from error

from . import emulator, reference
from .cuda_array import CudaArray
from .api import GpuArtifacts, Router, cache_info, clear_cache, compile, plan_from_topk, route
from .layer import MoeLayer
from .reference import Plan

__all__ = ["CudaArray", "GpuArtifacts", "MoeLayer", "Plan", "Router", "cache_info", "clear_cache", "compile", "emulator", "plan_from_topk", "reference", "route"]
