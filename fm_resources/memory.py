"""The C heap of a labelling process: glibc's mmap threshold, fixed.

A video's frames pass through buffers of a megabyte or more (a 768x576 RGB frame is 1.3 MB; a clip's working
frames, its masks and the detections' columns are larger). glibc serves such a request with mmap and hands it back
to the system when it is freed, but each time a block is freed that way it raises its threshold (up to 32 MB), so
the next ones come from the heap instead. Over a long video those heap blocks fragment: the memory is freed, glibc
keeps it (`mallinfo2().fordblks`), and `malloc_trim` cannot give it back. The peak RSS of `fm run` then grows with
the video's length although what it holds does not (BENCHMARKS.md, issue 14, sessions 13 and 14).

`fix_mmap_threshold()` sets the threshold once (mallopt M_MMAP_THRESHOLD, which also stops glibc from moving it):
blocks from FM_MMAP_THRESHOLD bytes (default 1 MiB) on are mmapped and returned to the system when freed; smaller
ones stay in the heap, where they are fast. It also exports glibc's own variable, MALLOC_MMAP_THRESHOLD_, so the
processes this one starts (the detector's worker processes, the forkserver) allocate the same way. It does nothing
where the C library is not glibc, when FM_MMAP_THRESHOLD is 0, or when MALLOC_MMAP_THRESHOLD_ is already set (glibc
applied that one when the process started).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

from fm_resources.settings import export_mmap_threshold, mmap_threshold

M_MMAP_THRESHOLD = -3  # glibc's malloc.h


class MallInfo2(ctypes.Structure):
    """glibc's `struct mallinfo2` (glibc >= 2.33)."""

    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library when it is glibc (mallopt, mallinfo2, malloc_trim); None elsewhere (macOS, musl)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if hasattr(libc, "mallinfo2"):
        libc.mallinfo2.restype = MallInfo2
    return libc


def fix_mmap_threshold() -> int | None:
    """Fix glibc's mmap threshold for this process and the ones it starts (see the module). Returns the threshold
    it set in bytes; None when it set nothing (not glibc, FM_MMAP_THRESHOLD=0, MALLOC_MMAP_THRESHOLD_ already set:
    by the user, or by an earlier call)."""
    libc = _libc()
    nbytes = mmap_threshold()
    if libc is None or nbytes is None:
        return None
    if libc.mallopt(M_MMAP_THRESHOLD, nbytes) != 1:
        return None
    export_mmap_threshold(nbytes)
    return nbytes


def heap() -> dict[str, int] | None:
    """glibc's heap figures in bytes: `in_use` (allocated from the heap), `free` (freed, kept by glibc: resident or
    not) and `mmapped` (blocks in their own mappings); None where mallinfo2 is not there."""
    libc = _libc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None
    m = libc.mallinfo2()
    return {"in_use": m.uordblks, "free": m.fordblks, "mmapped": m.hblkhd}


def trim() -> None:
    """malloc_trim(0): hand free heap pages back to the system (where glibc is the C library)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
