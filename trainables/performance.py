"""The fast paths a spec's ``performance:`` section switches on (study/spec/performance.py), applied in one place.

Each returns the exact path unchanged when its switch is off, so the default stays bit-reproducible.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

Tensor = torch.Tensor
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Autocast(nn.Module):
    """``net`` run under autocast, its output cast back to float32 (samplers keep their state's dtype)."""

    def __init__(self, net: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.net, self.dtype = net, dtype

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        x = args[0]
        with torch.autocast(x.device.type, dtype=self.dtype):
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


def sampling_network(net: nn.Module, perf: Any) -> nn.Module:
    """What samplers call: the EMA network, under autocast when asked."""
    return net if perf.sample_autocast == "none" else Autocast(net, DTYPES[perf.sample_autocast])


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
    order = torch.randperm(images.shape[0], generator=generator).to(images.device)
    for lo in range(0, images.shape[0], batch_size):
        idx = order[lo : lo + batch_size]
        yield images[idx], labels[idx]
