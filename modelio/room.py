"""Room to write a file: refuse a write that the disk or the process's file-size limit cannot take, before it starts.

torch's archive writer does not survive a write the kernel cuts (ENOSPC, EFBIG): it raises a
RuntimeError without the errno, then aborts the whole process from its destructor, so the trial
would read "its worker process died" instead of "the disk is full". Checking first turns that case
into the OSError every other model write raises.
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
from pathlib import Path

MARGIN = 1 << 20  # bytes beyond the estimate: the archive's own records, MLmodel, the input example


def ensure_room(folder: Path, nbytes: int) -> None:
    """Raise OSError ENOSPC (no room on `folder`'s disk) or EFBIG (the RLIMIT_FSIZE limit) unless `nbytes` + MARGIN fit.

    `folder` may not exist yet: its nearest existing parent's disk is checked. Nothing is written.
    """
    need = nbytes + MARGIN
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY and soft < need:
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG), str(folder))
    where = next(p for p in (folder, *folder.parents) if p.exists())
    if shutil.disk_usage(where).free < need:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder))
