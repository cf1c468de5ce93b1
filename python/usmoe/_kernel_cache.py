"""An on-disk cache of compiled GPU kernels (cubin + launch metadata).

Compiling a router for the GPU (usmoe-to-nvvm, ptxas) takes about a second;
the in-memory cache of usmoe.api saves it within a process, this one across
processes and on machines that can load the kernels but not compile them
(a GPU server without LLVM/MLIR, given a cache filled elsewhere for its
architecture).

Location: $USMOE_CACHE_DIR, else ~/.cache/usmoe/kernels; USMOE_CACHE_DIR=""
turns it off. Entries are keyed by the IR, the target (chip, PTX features)
and the compiler itself (a hash of the native module's file), so a rebuilt
compiler never reuses stale kernels. Writes are atomic; an unreadable entry
is ignored and recompiled.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tempfile
from typing import Callable, Optional, Tuple

_compiler_id: Optional[str] = None
# Lookups this process answered from disk / had to compile.
hits = 0
misses = 0


def cache_dir() -> Optional[str]:
    """The cache directory, or None when caching is off."""
    configured = os.environ.get("USMOE_CACHE_DIR")
    if configured is not None:
        return configured or None
    return os.path.join(os.path.expanduser("~"), ".cache", "usmoe", "kernels")


def compiler_id() -> Optional[str]:
    """A hash of the native module (the compiler), None if it is absent."""
    global _compiler_id
    if _compiler_id is None:
        here = os.path.dirname(os.path.abspath(__file__))
        candidates = sorted(glob.glob(os.path.join(here, "_usmoe*.so")))
        if not candidates:
            return None
        digest = hashlib.sha256()
        with open(candidates[0], "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _compiler_id = digest.hexdigest()
    return _compiler_id


def _key(ir: str, chip: str, features: str) -> Optional[str]:
    compiler = compiler_id()
    if compiler is None:
        return None
    return hashlib.sha256("\0".join([compiler, chip, features, ir]).encode()).hexdigest()


def _write_atomic(path: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def cubin(ir: str, chip: str, features: str,
          compile_fn: Callable[[], Tuple[bytes, str]]) -> Tuple[bytes, str]:
    """(image, metadata JSON) for `ir` on (chip, features): from the cache,
    else from `compile_fn()` (then stored)."""
    global hits, misses
    directory = cache_dir()
    key = _key(ir, chip, features) if directory else None
    if key is not None:
        base = os.path.join(directory, key)
        try:
            with open(base + ".cubin", "rb") as f:
                image = f.read()
            with open(base + ".json") as f:
                metadata = f.read()
            json.loads(metadata)  # a torn or foreign file is a miss
            if image:
                hits += 1
                return image, metadata
        except (OSError, ValueError):
            pass
    misses += 1
    image, metadata = compile_fn()
    if key is not None:
        try:
            os.makedirs(directory, exist_ok=True)
            # Metadata last: an entry counts once both files are there.
            _write_atomic(base + ".cubin", image)
            _write_atomic(base + ".json", metadata.encode())
        except OSError:
            pass  # a read-only or full disk only costs the next compile
    return image, metadata
