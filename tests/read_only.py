"""A directory nothing can be written to, for the tests of a read-only state directory.

As root (CI) permissions do not stop writes, so the directory is a read-only tmpfs mount;
otherwise its mode is set to 0555.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def read_only_directory(path: Path) -> Iterator[Path]:
    """`path` (created) made read-only for the block; writable again afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=False)
