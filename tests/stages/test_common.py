"""`guarded`: how a stage body ends on SIGTERM, run in a child process so the signal is real."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The stage body waits on zarr's event-loop thread, as a feature write does, when SIGTERM lands.
BODY = textwrap.dedent("""
    import asyncio, os, signal, threading
    import zarr.core.sync
    from stages._common import guarded

    @guarded
    def body():
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
        zarr.core.sync.sync(asyncio.sleep(30))

    body()
""")


def test_sigterm_during_pending_zarr_io_ends_with_one_line():
    done = subprocess.run([sys.executable, "-c", BODY], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 128 + signal.SIGTERM
    assert done.stderr.splitlines() == ["interrupted (SIGTERM): re-run to finish"]
