"""Each fast path (study/contract/spec/performance.py) against the exact path it replaces, on CPU, within a stated
tolerance.

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

from study.contract.memory_backend import MemoryTracker
from study.contract.spec.load import expand
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
    # on CPU the wrapper is the plain network (bit-identical); on CUDA the replayed kernels are the captured ones
    "cuda_graphs": ({"cuda_graphs": True}, 0.0, 0.0, 0.0 if DEVICE == "cpu" else 1e-5),
}


def _run(tmp_path: Path, classifier_r8, perf: dict) -> tuple[float, dict[str, torch.Tensor], torch.Tensor]:
    overrides = {"performance": perf, "resources.gpus": 1 if DEVICE == "cuda" else 0, "training.epochs": 1}
    _, trials = expand(micro_spec(**overrides))
    runtime = Runtime("memory:", "1", "p", "i", "micro", str(tmp_path), str(tmp_path / "cache"),
                      extractor_weights=str(classifier_r8[0]), log_images=False)  # fmt: skip
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


def _evaluations(ctx, guide: torch.nn.Module) -> list:
    """Three interfaces in one epoch: ancestral-5 and DDIM-3 (eps), Karras-Heun (the sigma view, float64 noise
    labels: its own merged forward), and DDIM-3 under (misguided) classifier guidance."""
    from study.contract.spec.guidance import GuidanceSpec
    from study.contract.spec.samplers import KarrasSampler
    from trainables.evaluation import Evaluation

    ancestral, ddim = ctx.spec.evaluation.samplers
    karras = KarrasSampler(kind="karras", steps=3)
    guided = GuidanceSpec(kind="misguided", scale=2.0)
    return [Evaluation(ancestral), Evaluation(ddim), Evaluation(karras), Evaluation(ddim, guided, guide, guide)]


def test_batched_evaluations_match_one_at_a_time(tmp_path: Path, classifier_r8) -> None:
    """``batch_evaluations``: every evaluation of an epoch in lockstep gives the samples, labels and NFE of the
    evaluations run one after another (tolerance 1e-5: the network sees a 4x larger batch), in fewer network calls,
    and the seconds it reports are shares that add up to the common wall time."""
    from study.contract.spec.networks import NoisyClassifier
    from trainables.evaluation import generate_all
    from trainables.guidance import misguided_classifier
    from trainables.lockstep import Lockstep

    overrides = {"resources.gpus": 1 if DEVICE == "cuda" else 0, "training.epochs": 1}
    _, trials = expand(micro_spec(**overrides))
    runtime = Runtime("memory:", "1", "p", "i", "micro", str(tmp_path), str(tmp_path / "cache"),
                      extractor_weights=str(classifier_r8[0]), log_images=False)  # fmt: skip
    ctx = build(trials[0], runtime, MemoryTracker())
    train_epoch(ctx, Progress(), 1)
    small = NoisyClassifier(channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(4,),
                            head_channels=16, norm_groups=8)
    guide = misguided_classifier(small, 1, 8, 10, 0).to(ctx.device)
    evaluations = _evaluations(ctx, guide)
    ev = ctx.spec.evaluation.model_copy(update={"num_samples": 24, "batch_size": 10})  # a short last batch too
    args = (ctx.ema.model, ctx.dynamics, evaluations, ev, (1, 8, 8), 0, ctx.device, 10)
    plain = list(generate_all(*args))
    calls = []

    class Counted(torch.nn.Module):  # the EMA network (its parameters, so its dtype), counting its batch rows
        def __init__(self, net: torch.nn.Module):
            super().__init__()
            self.net = net

        def forward(self, x, t, labels=None):
            calls.append(x.shape[0])
            return self.net(x, t, labels)

    counted = Counted(ctx.ema.model)
    batched = list(generate_all(counted, *args[1:], batched=True))
    for p, b in zip(plain, batched, strict=True):
        assert b.nfe == p.nfe
        assert float((b.samples - p.samples).abs().max()) <= 1e-5
        assert (b.labels is None) == (p.labels is None)
        if p.labels is not None:
            assert torch.equal(b.labels, p.labels)
    # Karras runs in its own group (float64 labels), the others share one: fewer calls than one-at-a-time
    assert len(calls) < sum(-(-24 // 10) * p.nfe for p in plain)
    assert sum(calls) == sum(24 * p.nfe for p in plain)
    result = Lockstep(counted).run([lambda m: m(torch.zeros(2, 1, 8, 8), torch.zeros(2)).shape[0]] * 3)
    assert result.values == [2, 2, 2] and result.forwards == 1
    assert sum(result.seconds) == pytest.approx(result.wall_seconds)


def test_lockstep_hands_a_failing_job_s_error_back_and_finishes_the_others() -> None:
    from trainables.lockstep import Lockstep

    def net(x, t, labels=None):
        return x * 2

    def ok(model):
        return [float(model(torch.ones(1, 1), torch.zeros(1))[0, 0]) for _ in range(3)]

    def fails(model):
        model(torch.ones(1, 1), torch.zeros(1))
        raise RuntimeError("sampler broke")

    finished = []
    hub = Lockstep(net)
    with pytest.raises(RuntimeError, match="sampler broke"):
        hub.run([lambda m: finished.append(ok(m)), fails, lambda m: finished.append(ok(m))])
    assert finished == [[2.0] * 3, [2.0] * 3]
    again = hub.run([ok, ok])  # the hub is reusable after a failure
    assert again.values == [[2.0] * 3] * 2 and again.forwards == 3


@pytest.mark.skipif(DEVICE != "cuda", reason="CUDA graphs need a GPU (bench/gpu_check.sh runs this with one)")
def test_cuda_graphs_capture_once_per_batch_shape_and_replay_the_eager_samples() -> None:
    from study.contract.spec.samplers import DDIMSampler
    from trainables.dynamics import build_dynamics
    from trainables.networks import build_network
    from trainables.performance import CudaGraphs

    spec = micro_spec()
    _, trials = expand(spec)
    s = trials[0].spec
    torch.manual_seed(0)
    net = build_network(s.network, 1, 8, 0).to("cuda").eval()
    dynamics = build_dynamics(s.dynamics)
    ddim = DDIMSampler(kind="ddim", steps=5)
    eager = generate(net, dynamics, ddim, (1, 8, 8), 24, 10, 0, device="cuda")
    graphed_net = CudaGraphs(net)
    graphed = generate(graphed_net, dynamics, ddim, (1, 8, 8), 24, 10, 0, device="cuda")
    assert graphed_net.captures == 2  # batches of 10 and a last one of 4
    assert float((graphed.samples - eager.samples).abs().max()) <= 1e-5


def test_cuda_graphs_are_the_plain_network_off_cuda() -> None:
    from study.contract.spec.performance import PerformanceSpec
    from trainables.performance import CudaGraphs, inactive_switches

    net = torch.nn.Linear(3, 3)
    wrapped = CudaGraphs(lambda x, t, y=None: net(x))  # type: ignore[arg-type]
    x = torch.randn(4, 3)
    with torch.no_grad():
        assert torch.equal(wrapped(x, torch.zeros(4)), net(x))
    assert wrapped.captures == 0
    assert inactive_switches(PerformanceSpec(cuda_graphs=True), torch.device("cpu"))
    assert not inactive_switches(PerformanceSpec(cuda_graphs=True), torch.device("cuda"))
