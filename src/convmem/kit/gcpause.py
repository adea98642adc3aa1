"""Pausing Python's cyclic garbage collector around allocation-heavy bulk work."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_holders = 0
_was_enabled = True  # the collector's state before the outermost pause


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collections inside the block (reference counting still frees
    almost everything). An import batch allocates millions of short-lived
    containers; the collections they trigger cost ~25% of its time and find
    nothing. The pause is process-wide, so keep the block short: one batch."""
    global _holders, _was_enabled
    with _lock:
        _holders += 1
        if _holders == 1:
            _was_enabled = gc.isenabled()
            gc.disable()
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _was_enabled:
                gc.enable()
