"""What ``python -m study validate`` shows per trial: network size, schedule end points, sampler cost."""

from __future__ import annotations

from typing import Any

import torch

from study.contract.spec import StudySpec, Trial
from trainables.data import image_shape
from trainables.dynamics import build_dynamics
from trainables.networks import build_network, count_parameters
from trainables.samplers import expected_nfe


def network_parameters(spec: Any) -> int:
    """Parameter count without allocating weights (meta device), so paper-size networks cost nothing."""
    channels, resolution, _ = image_shape(spec.dataset)
    num_classes = 10 if spec.class_conditional else 0
    with torch.device("meta"):
        net = build_network(spec.network, channels, resolution, num_classes)
    return count_parameters(net)


def _stop_rules(spec: StudySpec) -> list[str]:
    """The early-stopping rules a trial runs under, as sentences (``training.stop``)."""
    stop = spec.training.stop
    if stop is None:
        return []
    floor = f", not before epoch {stop.min_epochs}" if stop.min_epochs else ""
    out = []
    if stop.plateau:
        p = spec.evaluation.plateau
        out.append(f"early, once {stop.curves} IS curves plateaued or peaked (margin {p.margin} IS, "
                   f"{p.confidence:.0%} confidence) at {p.persistence} evaluations in a row{floor}")  # fmt: skip
    if stop.memorization:
        o = spec.evaluation.onset
        out.append(f"early, once memorization begins: {o.score} above its held-out level by more than "
                   f"{o.margin:g} ({o.confidence:.0%} confidence) at {o.persistence} evaluations in a row"
                   f"{floor}")  # fmt: skip
    return out


def describe_trial(trial: Trial) -> list[str]:
    spec = trial.spec
    axes = ", ".join(f"{k}={v}" for k, v in trial.axes.items()) or "(no grid)"
    lines = [f"{trial.name}: {axes}"]
    lines.append(f"    network   {spec.network.kind}: {network_parameters(spec) / 1e6:.2f}M parameters")
    summary = build_dynamics(spec.dynamics).summary()
    facts = "  ".join(f"{k}={v:.3g}" for k, v in summary.items())
    lines.append(f"    dynamics  {spec.dynamics.kind}: {facts}")
    tr = spec.training
    epoch = f"epochs of {tr.epoch_size} images" if tr.epoch_size is not None else "epochs"
    subset = getattr(spec.dataset, "subset", None)
    data = f" on a subset of {subset.size} training images (seed {subset.seed})" if subset is not None else ""
    lines.append(
        f"    training  {tr.epochs} {epoch}{data}, batch {tr.batch_size}, {tr.optimizer} lr {tr.lr:g}, "
        f"EMA {tr.ema_decay:g}, seed {tr.seed}, IS every {tr.eval_every} epochs"
    )
    lines += [f"    stop      {rule}" for rule in _stop_rules(spec)]
    ev = spec.evaluation
    for eval_id, s, g in ev.evaluations:
        # a guided step adds one classifier forward + backward per network evaluation (ADM Alg. 1/2)
        cost = " + classifier gradient per step" if g.guided else ""
        lines.append(f"    sampler   {eval_id:<26} NFE {expected_nfe(s, spec.dynamics)}{cost}")
    if spec.classifier is not None and any(g.guided for g in ev.guidance):
        c = spec.classifier
        lines.append(
            f"    classifier {c.network.kind} {c.network.channels} ch x{list(c.network.channel_mult)}: {c.epochs} "
            f"epochs, batch {c.batch_size}, AdamW lr {c.lr:g}; trained once per (dataset, dynamics), cached"
        )
    return lines


def describe_study(base: Any, trials: list[Trial]) -> str:
    ev = base.evaluation
    head = [
        f"study {base.name}: {len(trials)} trial(s) x {len(ev.samplers)} sampler(s) x {len(ev.guidance)} guidance",
        f"  IS: {ev.inception_score.extractor}, {ev.num_samples} samples, {ev.inception_score.splits} splits, "
        f"{ev.inception_score.bootstrap} bootstrap replicates; "
        f"resources per trial: {base.resources.cpus:g} CPU, {base.resources.gpus:g} GPU",
    ]
    body = [line for t in trials for line in describe_trial(t)]
    return "\n".join(head + body)
