"""Ending the server processes the tests start: politely first, by force if they linger."""

from __future__ import annotations

import subprocess
from typing import Any


def terminate(
    process: subprocess.Popen[Any], timeout: float, kill_timeout: float | None = None
) -> None:
    """SIGTERM a running `process`; SIGKILL it if it has not exited within `timeout` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=kill_timeout)
