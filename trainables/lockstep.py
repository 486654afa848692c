"""Lockstep batching: several sampling jobs share one network, and every round their calls become one forward.

Each job (one evaluation: a sampler with its guidance) runs its own unchanged loop in a thread and sees a proxy
of the network. The coordinator (the calling thread) waits until every job still running has posted its next call,
concatenates the calls (x, noise label, class labels) along the batch, runs the network once and hands each job
its rows back. Which jobs share a round never depends on thread timing (a round holds every live job), so the
result is reproducible; it equals the one-job-at-a-time result up to the network's batch-size dependence in
floating point (tests/test_fast_paths.py states the tolerance).

The network runs in the coordinator's thread only, under ``no_grad`` and whatever autocast the network wrapper
sets, so guides and samplers keep their thread-local grad mode to themselves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch

Tensor = torch.Tensor
T = TypeVar("T")


@dataclass
class _Call:
    x: Tensor
    t: Tensor
    labels: Tensor | None

    def group(self) -> tuple[Any, ...]:
        """Calls merged into one forward must agree on everything but their batch rows."""
        return (self.x.dtype, self.x.device, tuple(self.x.shape[1:]), self.t.dtype, self.labels is None)


class _Proxy:
    """What one job calls as its network: ``net(x, t, class_labels)``; any other attribute is the real network's
    (samplers read its parameters' dtype)."""

    def __init__(self, hub: Lockstep, index: int):
        self._hub, self._index = hub, index

    def __getattr__(self, name: str) -> Any:
        return getattr(self._hub.net, name)

    def __call__(self, x: Tensor, t: Tensor, class_labels: Tensor | None = None) -> Tensor:
        return self._hub.call(self._index, _Call(x, t, class_labels))


@dataclass(frozen=True)
class LockstepResult(Generic[T]):
    """Each job's return value, its share of the wall time (by the network rows it was given), the wall time,
    and how many merged forwards ran."""

    values: list[T]
    seconds: list[float]
    wall_seconds: float
    forwards: int


class Lockstep:
    """Run jobs ``job(net) -> value`` in lockstep over one network ``net(x, t, class_labels)``."""

    def __init__(self, net: Callable[..., Tensor]):
        self.net = net
        self._cv = threading.Condition()
        self._pending: dict[int, _Call] = {}
        self._replies: dict[int, Tensor | BaseException] = {}
        self._done: set[int] = set()

    def call(self, index: int, call: _Call) -> Tensor:
        with self._cv:
            self._pending[index] = call
            self._cv.notify_all()
            self._cv.wait_for(lambda: index in self._replies)
            reply = self._replies.pop(index)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def run(self, jobs: Sequence[Callable[[Callable[..., Tensor]], T]]) -> LockstepResult[T]:
        """Every job's value (in order); the first job's exception is re-raised once all jobs have ended."""
        n = len(jobs)
        self._pending, self._replies, self._done = {}, {}, set()
        values: list[Any] = [None] * n
        errors: list[BaseException | None] = [None] * n
        rows = [0] * n

        def work(i: int) -> None:
            try:
                values[i] = jobs[i](_Proxy(self, i))
            except BaseException as e:  # noqa: BLE001 - handed back to the caller's thread below
                errors[i] = e
            finally:
                with self._cv:
                    self._done.add(i)
                    self._cv.notify_all()

        threads = [threading.Thread(target=work, args=(i,), name=f"lockstep-{i}", daemon=True) for i in range(n)]
        start, forwards = time.perf_counter(), 0
        for th in threads:
            th.start()
        while True:
            with self._cv:
                self._cv.wait_for(lambda: len(self._pending) + len(self._done) == n)
                if len(self._done) == n:
                    break
                calls, self._pending = self._pending, {}
            replies = self._forward(calls)
            forwards += 1
            for i, call in calls.items():
                rows[i] += call.x.shape[0]
            with self._cv:
                self._replies.update(replies)
                self._cv.notify_all()
        for th in threads:
            th.join()
        wall = time.perf_counter() - start
        for e in errors:
            if e is not None:
                raise e
        total = sum(rows) or 1
        return LockstepResult(values, [wall * r / total for r in rows], wall, forwards)

    def _forward(self, calls: dict[int, _Call]) -> dict[int, Tensor | BaseException]:
        """One network call per compatible group of calls (in job order), split back into each job's rows."""
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i in sorted(calls):
            groups.setdefault(calls[i].group(), []).append(i)
        replies: dict[int, Tensor | BaseException] = {}
        for members in groups.values():
            parts = [calls[i] for i in members]
            try:
                with torch.no_grad():
                    labels = None if parts[0].labels is None else torch.cat([p.labels for p in parts])  # type: ignore[misc]
                    out = self.net(torch.cat([p.x for p in parts]), torch.cat([p.t for p in parts]), labels)
                chunks = out.split([p.x.shape[0] for p in parts])
                replies |= dict(zip(members, chunks, strict=True))
            except BaseException as e:  # noqa: BLE001 - every job of the group sees the network's failure
                replies |= dict.fromkeys(members, e)
        return replies
