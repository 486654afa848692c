"""Fast paths: switches that trade bit-exactness for speed on an accelerator. Every default is today's exact path
(bit-reproducible on CPU); each switch has an equivalence test against it (tests/test_fast_paths.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from study.contract.spec.base import Strict


class PerformanceSpec(Strict):
    """How a trial runs its network; none of it changes what is trained or evaluated, only how fast and how exactly."""

    train_autocast: Literal["none", "bf16"] = Field(
        "none", description="bf16 autocast for the training forward/backward (weights and optimizer stay float32)"
    )
    sample_autocast: Literal["none", "bf16", "fp16"] = Field(
        "none", description="autocast for the network inside samplers (the sampler's own state keeps its dtype)"
    )
    channels_last: bool = Field(False, description="NHWC memory format for the network and its inputs (GPU convs)")
    compile: bool = Field(False, description="torch.compile the network for training (first epoch pays compilation)")
    data_on_device: bool = Field(
        False, description="keep the whole training set on the device and batch by index (small datasets: no loader)"
    )
    batch_evaluations: bool = Field(
        False,
        description="generate every evaluation of an epoch (samplers x guidance) together: each sampler keeps its own "
        "loop and noise, and every step their network calls run as one forward (same samples up to floating point; "
        "an evaluation's sampling seconds become its share of the common wall time, by network rows)",
    )
    cuda_graphs: bool = Field(
        False,
        description="replay the sampling network from CUDA graphs captured once per batch shape (pays when kernel "
        "launches bound the forward: small networks, small batches); no effect off CUDA",
    )
