"""Ctrl-C and SIGTERM in the driver: both end a study the same way (``KeyboardInterrupt``, or Ray Tune's own
graceful stop while trials run), and the clean-up that follows cannot itself be interrupted half-way.

Ray Tune installs its own SIGINT handler during ``Tuner.fit`` (it stops the trials, saves the experiment state and
returns) and puts the previous handler back only when a signal arrives; ``ray.init`` replaces the SIGTERM handler
with ``sys.exit``. :func:`install` is called again after each, so a signal always means the same thing here.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any


def _sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM does what Ctrl-C does: whatever SIGINT's handler is right now (Tune's graceful stop during trials),
    else ``KeyboardInterrupt``."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not signal.default_int_handler:
        handler(signal.SIGINT, frame)
        return
    raise KeyboardInterrupt


def install() -> None:
    """SIGINT raises ``KeyboardInterrupt`` (Python's default) and SIGTERM follows SIGINT. Main thread only (the only
    one Python lets set handlers); elsewhere it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _sigterm)


@contextlib.contextmanager
def deferred() -> Iterator[list[int]]:
    """SIGINT and SIGTERM ignored for the block's duration (a clean-up such as stopping Ray must finish once it has
    begun: a second Ctrl-C would orphan its processes); the signals that arrived are listed, not acted on."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    arrived: list[int] = []
    previous: dict[int, Any] = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, lambda signum, frame: arrived.append(signum))
    try:
        yield arrived
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
