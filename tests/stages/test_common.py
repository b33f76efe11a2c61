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


# SIGTERM's handler raising while a finalizer runs: Python swallows what a finalizer raises ("Exception ignored").
IN_FINALIZER = textwrap.dedent("""
    import os, signal
    from stages._common import guarded

    class Finalized:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before kill returns, inside __del__

    @guarded
    def body():
        Finalized()  # freed at once
        print("ran to the end")

    body()
""")


def test_sigterm_swallowed_by_a_finalizer_still_ends_the_stage_with_one_line():
    done = subprocess.run([sys.executable, "-c", IN_FINALIZER], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert done.stderr.splitlines() == ["interrupted (SIGTERM): re-run to finish"]
