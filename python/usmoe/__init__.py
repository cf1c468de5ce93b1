"""usmoe: a compiler for Mixture-of-Experts routing (Token Choice, Expert
Choice and USMoE's unified router), built on MLIR.

    import usmoe
    plan = usmoe.route(logits, mode="unified", k=1.5)
    plan.gates, plan.expert_offsets, plan.token_ids, plan.weights
"""

from . import reference
from .cuda_array import CudaArray
from .api import GpuArtifacts, Router, cache_info, clear_cache, compile, route
from .layer import MoeLayer
from .reference import Plan

__all__ = ["CudaArray", "GpuArtifacts", "MoeLayer", "Plan", "Router", "cache_info", "clear_cache", "compile", "reference", "route"]
