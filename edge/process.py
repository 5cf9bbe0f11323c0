"""Process-wide settings for the device's commands, applied once at start before numpy loads.

The frontend makes many short-lived arrays of a few hundred kilobytes (a batch of frames' FFT
stages). With glibc's default malloc each is a fresh mmap, or heap the allocator hands back to the
kernel as soon as it is free, so every batch pays page faults: a third of `ser classify`'s time
went to the kernel. The device's BLAS products (the frontend's mel filters and DCT) are a few
hundred frames by a few hundred columns, too small for threads to pay: OpenBLAS's thread pool,
started when numpy is imported, would be start-up cost and a second core kept busy for nothing.
"""

from __future__ import annotations

import ctypes
import os

MMAP_THRESHOLD_BYTES = 4 << 20  # larger arrays still get their own mapping, returned when freed
TRIM_THRESHOLD_BYTES = 16 << 20  # free heap kept for reuse up to this much before it is returned:
# a signal of 6-20 s and the frontend's 256-frame step free more than 8 MB at once, which with 8 MB
# went back to the kernel after every call and came back as ~2,000 page faults (0.2 ms per second
# of audio, docs/benchmarks.md); the daemon's 128-frame steps never free that much
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt(3) parameter numbers in glibc's malloc.h


def tune() -> None:
    """One OpenBLAS thread (unless the user set it) and glibc malloc that keeps freed arrays for
    reuse. Call before numpy is imported; elsewhere than glibc the malloc part does nothing."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
