"""The fast paths a spec's ``performance:`` section switches on (study/contract/spec/performance.py), in one place.

Each returns the exact path unchanged when its switch is off, so the default stays bit-reproducible.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)
Tensor = torch.Tensor
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Autocast(nn.Module):
    """``net`` run under autocast, its output cast back to float32 (samplers keep their state's dtype)."""

    def __init__(self, net: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.net, self.dtype = net, dtype

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        x = args[0]
        # no cast cache: each call is its own context anyway, and a CUDA graph capture must not keep cached casts
        with torch.autocast(x.device.type, dtype=self.dtype, cache_enabled=False):
            return self.net(*args, **kwargs).float()


def prepare_network(net: nn.Module, perf: Any) -> nn.Module:
    """The network in the memory format the switches ask for (in place; parameters are shared)."""
    return net.to(memory_format=torch.channels_last) if perf.channels_last else net


def training_forward(net: nn.Module, perf: Any) -> nn.Module:
    """What the training loss calls: the network, compiled when asked (it shares the network's parameters)."""
    return torch.compile(net) if perf.compile else net


@contextlib.contextmanager
def training_autocast(device: torch.device, perf: Any) -> Iterator[None]:
    if perf.train_autocast == "none":
        yield
        return
    with torch.autocast(device.type, dtype=DTYPES[perf.train_autocast]):
        yield


@dataclass
class _Graph:
    graph: Any  # torch.cuda.CUDAGraph
    inputs: tuple[Tensor, ...]
    output: Tensor


class CudaGraphs(nn.Module):
    """``net(x, t, class_labels)`` replayed from a CUDA graph, one captured per input signature.

    A sampling loop calls the network with the same shapes at every step, so after one capture each call is a copy
    into the graph's static inputs and one replay: the kernel launches (which bound a small network at a small batch)
    are recorded once. The graphs read the parameters in place, so the EMA weights they see are the current ones;
    the wrapper is built per evaluation all the same (trainables/trainable.py), so no graph outlives its epoch.
    Off CUDA, with grad enabled, past ``max_graphs`` signatures or when a capture fails, it is the plain network.
    """

    def __init__(self, net: nn.Module, max_graphs: int = 8, warmup: int = 2):
        super().__init__()
        self.net, self.max_graphs, self.warmup = net, max_graphs, warmup
        self._graphs: dict[tuple[Any, ...], _Graph | None] = {}  # None: capture failed, run eagerly
        self._pool: Any = None
        self.captures = 0

    def forward(self, x: Tensor, t: Tensor, class_labels: Tensor | None = None) -> Tensor:
        if x.device.type != "cuda" or torch.is_grad_enabled():
            return self.net(x, t, class_labels)
        inputs = (x, t) if class_labels is None else (x, t, class_labels)
        key = tuple((a.shape, a.dtype) for a in inputs)
        if key not in self._graphs:
            if len(self._graphs) >= self.max_graphs:
                return self.net(x, t, class_labels)
            self._graphs[key] = self._capture(inputs)
        graph = self._graphs[key]
        if graph is None:
            return self.net(x, t, class_labels)
        for static, a in zip(graph.inputs, inputs, strict=True):
            static.copy_(a)
        graph.graph.replay()
        return graph.output.clone()  # the next replay overwrites the static output

    def _capture(self, inputs: tuple[Tensor, ...]) -> _Graph | None:
        """Warm up on a side stream (lazy inits, cuDNN autotuning), then record one forward (PyTorch's recipe)."""
        static = tuple(a.clone() for a in inputs)
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(self.warmup):
                    self.net(*static)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                output = self.net(*static)
        except RuntimeError as e:  # e.g. a network that syncs with the host: run it eagerly
            log.warning("CUDA graph capture failed for input shapes %s (%s); sampling eagerly",
                        [tuple(a.shape) for a in inputs], e)  # fmt: skip
            return None
        self._pool = graph.pool()
        self.captures += 1
        return _Graph(graph, static, output)


def sampling_network(net: nn.Module, perf: Any) -> nn.Module:
    """What samplers call: the EMA network, under autocast when asked, replayed from CUDA graphs when asked."""
    if perf.sample_autocast != "none":
        net = Autocast(net, DTYPES[perf.sample_autocast])
    return CudaGraphs(net) if perf.cuda_graphs else net


def inactive_switches(perf: Any, device: torch.device) -> list[str]:
    """The switches that are on but do nothing on ``device``, said once when a trial starts."""
    if perf.cuda_graphs and device.type != "cuda":
        return [f"performance.cuda_graphs has no effect on {device.type}: sampling runs the network eagerly"]
    return []


def to_input(x: Tensor, perf: Any) -> Tensor:
    """A batch in the network's memory format."""
    return x.contiguous(memory_format=torch.channels_last) if perf.channels_last and x.ndim == 4 else x


def device_batches(
    images: Tensor, labels: Tensor, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[Tensor, Tensor]]:
    """Shuffled batches of a dataset held on the device, in exactly the order ``DataLoader(shuffle=True,
    generator=generator)`` yields, without a loader: the loader's iterator first draws its base seed from the
    generator, then its ``RandomSampler`` draws ``randperm(n, generator)``."""
    torch.empty((), dtype=torch.int64).random_(generator=generator)  # the loader iterator's base seed
    yield from indexed_batches(images, labels, batch_size, torch.randperm(images.shape[0], generator=generator))


def indexed_batches(
    images: Tensor, labels: Tensor, batch_size: int, order: Tensor
) -> Iterator[tuple[Tensor, Tensor]]:
    """Batches of a dataset held on the device, taken in ``order`` (indices; repeats allowed)."""
    order = order.to(images.device)
    for lo in range(0, order.shape[0], batch_size):
        idx = order[lo : lo + batch_size]
        yield images[idx], labels[idx]
