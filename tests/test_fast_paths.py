"""Each fast path (study/spec/performance.py) against the exact path it replaces, on CPU, within a stated tolerance.

One epoch of the micro trial from the same seed: the mean loss and every weight after the epoch, then a DDIM draw
from the EMA weights. Exact switches must match bit for bit; the others within the tolerance written beside them.
``bench/gpu_check.sh`` runs this file on a GPU (``STUDY_TEST_DEVICE=cuda``), where the switches matter.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from conftest import micro_spec

from study.memory_backend import MemoryTracker
from study.spec.load import expand
from trainables.evaluation import generate
from trainables.trainable import Progress, Runtime, build, train_epoch

DEVICE = os.environ.get("STUDY_TEST_DEVICE", "cpu")
# (switches, loss tolerance, weight tolerance, sample tolerance): 0 means bit-identical
CASES = {
    "data_on_device": ({"data_on_device": True}, 0.0, 0.0, 0.0),
    "channels_last": ({"channels_last": True}, 1e-5, 1e-4, 1e-3),
    "train_bf16": ({"train_autocast": "bf16"}, 2e-2, 5e-2, None),
    "sample_bf16": ({"sample_autocast": "bf16"}, 0.0, 0.0, 0.1),
    "compile": ({"compile": True}, 1e-4, 1e-3, 1e-3),
}


def _run(tmp_path: Path, classifier_r8, perf: dict) -> tuple[float, dict[str, torch.Tensor], torch.Tensor]:
    overrides = {"performance": perf, "resources.gpus": 1 if DEVICE == "cuda" else 0, "training.epochs": 1}
    _, trials = expand(micro_spec(**overrides))
    runtime = Runtime("memory:", "1", "p", "i", "micro", str(tmp_path), str(classifier_r8[0]), False)
    ctx = build(trials[0], runtime, MemoryTracker())
    loss = train_epoch(ctx, Progress(), 1)["train/loss"]
    from trainables.performance import sampling_network

    sampler = ctx.spec.evaluation.samplers[1]  # ddim-3
    x, *_ = generate(sampling_network(ctx.ema.model, ctx.spec.performance), ctx.dynamics, sampler, (1, 8, 8), 16,
                     16, 0, device=ctx.device)  # fmt: skip
    return loss, {k: v.detach().float().cpu() for k, v in ctx.net.state_dict().items()}, x


@pytest.fixture(scope="module")
def exact(tmp_path_factory, classifier_r8):
    return _run(tmp_path_factory.mktemp("exact"), classifier_r8, {})


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "compile" else n for n in CASES])
def test_fast_path_matches_the_exact_path(name: str, exact, tmp_path: Path, classifier_r8) -> None:
    perf, loss_tol, weight_tol, sample_tol = CASES[name]
    if name == "compile":
        pytest.importorskip("torch._inductor")
    loss, weights, x = _run(tmp_path, classifier_r8, perf)
    loss0, weights0, x0 = exact
    assert loss == pytest.approx(loss0, rel=loss_tol, abs=0 if loss_tol == 0 else 1e-6)
    worst = max(float((weights[k] - weights0[k]).abs().max()) for k in weights0)
    assert worst <= weight_tol, worst
    if sample_tol is not None:
        diff = float((x - x0).abs().max())
        assert diff <= sample_tol, diff
