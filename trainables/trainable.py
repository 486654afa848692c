"""What runs inside one trial: train one variant, evaluate every sampler periodically, decide, checkpoint, log.

``run_trial`` holds the logic and talks to its host through a ``Session`` (Ray Tune in a study, a plain
local object in tests), so it can be run and tested without Ray. ``tune_trainable`` is the Ray Tune
function trainable.
"""

from __future__ import annotations

import contextlib
import logging
import math
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import KW_ONLY, asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import ray
import torch
from torch.utils.data import DataLoader

from study.contract import keys
from study.contract.runlog import TrialRun
from study.contract.spec import StudySpec, Trial
from study.contract.store import connect
from study.contract.tracking import Tracker
from study.statistics.plateau import Verdict
from trainables.data import ImageData, load_dataset
from trainables.dynamics import build_dynamics
from trainables.ema import EMA
from trainables.evaluation import EvalResult, Evaluation, generate_all, score
from trainables.files import atomic_write, load_tensors
from trainables.networks import build_network, count_parameters
from trainables.performance import (
    device_batches,
    inactive_switches,
    indexed_batches,
    prepare_network,
    sampling_network,
    to_input,
    training_autocast,
    training_forward,
)
from trainables.stopping import (
    EpochOutcome,
    EvaluationHistory,
    Stop,
    bootstrap_settings,
    first_stop,
    onset_metrics,
    onsets,
    plateau_rule,
)  # fmt: skip
from trainables.training import epoch_order, epoch_seed, fit_epoch

log = logging.getLogger(__name__)
Tensor = torch.Tensor
CHECKPOINT_FILE = "state.pt"


@dataclass(frozen=True)
class Runtime:
    """Everything a trial needs from the driver, resolved to absolute values before trials start."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    instance: str
    study: str
    data_dir: str  # datasets (StudyPaths.data)
    cache_dir: str  # derived data: prepared image folders, FID/KID reference features (StudyPaths.cache)
    _: KW_ONLY
    extractor_weights: str | None = None
    log_images: bool = True
    # guidance: trained noisy classifier weights by ``guidance_classifier.classifier_key(spec)`` (trained by the driver)
    classifier_weights: dict[str, str] | None = None
    # where tracking writes go while the tracking store is down (study.contract.runlog.Spool); None: a failure raises
    spool_dir: str | None = None


class Session(Protocol):
    def restored(self) -> contextlib.AbstractContextManager[Path | None]: ...

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None: ...


class TuneSession:
    """Ray Tune: checkpoints are persisted by Tune, metrics reported once per epoch."""

    @contextlib.contextmanager
    def restored(self) -> Iterator[Path | None]:
        from ray import tune

        ckpt = tune.get_checkpoint()
        if ckpt is None:
            yield None
            return
        with ckpt.as_directory() as d:
            yield Path(d)

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        from ray import tune

        checkpoint = tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        tune.report(metrics, checkpoint=checkpoint)


def _device(spec: StudySpec) -> torch.device:
    return torch.device("cuda" if spec.resources.gpus > 0 and torch.cuda.is_available() else "cpu")


def describe_device(device: torch.device) -> str:
    """``cuda: NVIDIA H100 80GB HBM3`` or ``cpu: <model name> x 1 thread(s)``: what compute tables are measured on."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return f"cpu: {model} x {torch.get_num_threads()} thread(s)"


@dataclass
class TrialContext:
    """What a trial is built from: its spec, data, model, optimiser and where it logs (``build``)."""

    name: str
    axes: dict[str, str]
    spec: StudySpec
    runtime: Runtime
    tracker: Tracker
    device: torch.device
    data: ImageData
    dynamics: Any
    net: torch.nn.Module
    ema: EMA
    opt: torch.optim.Optimizer
    num_classes: int
    steps_per_epoch: int
    train_net: torch.nn.Module | None = None  # what the loss calls: ``net``, or compiled (performance.compile)
    device_data: tuple[Tensor, Tensor] | None = None  # the training set on the device (performance.data_on_device)


@dataclass
class Progress:
    """What a checkpoint restores: the last completed epoch, optimiser steps, training seconds, the MLflow run."""

    epoch: int = 0
    step: int = 0
    train_seconds: float = 0.0
    run_id: str | None = None


def run_trial(trial: Trial, runtime: Runtime, session: Session, tracker: Tracker | None = None) -> str:
    """Train and evaluate one trial; returns how it ended: ``finished``, ``converged`` or ``diverged``.

    Phases: build -> restore -> open the run and its evaluation history -> per epoch: train, evaluate (when due),
    decide (stopping rules), log, checkpoint. An exception marks the run ``errored`` and propagates (Tune retries).
    """
    ctx = build(trial, runtime, tracker or connect(runtime.tracking_uri))
    progress = restore(ctx, session)
    run = open_run(ctx, progress)
    history = restore_history(ctx, run, progress.epoch)
    guides = Guides.load(ctx, run)
    try:
        stop = decide_restored(ctx, session, progress, run, history)
        while stop is None:  # the budget rule ends the last epoch at the latest
            stop = run_epoch(ctx, session, progress, run, guides, history, progress.epoch + 1)
    except BaseException:
        run.finish("errored")
        raise
    return finish(ctx, run, stop)


def run_epoch(
    ctx: TrialContext, session: Session, progress: Progress, run: TrialRun, guides: Guides,
    history: EvaluationHistory, epoch: int,
) -> Stop | None:  # fmt: skip
    """Train one epoch, evaluate when due, ask the stopping rules, log, report (and checkpoint)."""
    metrics = train_epoch(ctx, progress, epoch)
    outcome = EpochOutcome(epoch, metrics[keys.TRAIN_LOSS], {})
    if math.isfinite(outcome.loss) and _evaluation_due(ctx.spec, epoch):
        scores, verdicts = evaluate_epoch(ctx, run, guides, history, epoch)
        found = onsets(ctx.spec, history)  # the memorization-onset rule (study/statistics/onset.py) where it is logged
        metrics |= scores | onset_metrics(found)
        outcome = EpochOutcome(epoch, outcome.loss, verdicts, found)
    stop = first_stop(outcome, ctx.spec)
    run.log_metrics(metrics, epoch)
    report_epoch(ctx, session, progress, run, outcome, stop, metrics)
    return stop


def build(trial: Trial, runtime: Runtime, tracker: Tracker) -> TrialContext:
    """Data, dynamics (fitted to the data where it needs it), network, EMA and optimiser of one trial."""
    spec = trial.spec
    tr = spec.training
    torch.set_num_threads(max(1, int(spec.resources.cpus)))
    device = _device(spec)
    for message in inactive_switches(spec.performance, device):
        log.warning("%s: %s", trial.name, message)
    data = load_dataset(spec.dataset, runtime.data_dir, runtime.cache_dir)
    num_classes = data.num_classes if spec.class_conditional else 0
    dynamics = build_dynamics(spec.dynamics)
    fit_data = getattr(dynamics, "fit_data", None)
    if fit_data is not None:  # e.g. NCSNv2's sigma_1 from the largest pairwise distance of the training set
        fit_data(torch.stack([data.train[i][0] for i in range(len(data.train))]))
    torch.manual_seed(tr.seed)
    net = prepare_network(build_network(spec.network, data.channels, data.resolution, num_classes).to(device),
                          spec.performance)  # fmt: skip
    ema = EMA(net, tr.ema_decay, tr.ema_warmup)
    opt_cls = torch.optim.AdamW if tr.optimizer == "adamw" else torch.optim.Adam
    opt = opt_cls(net.parameters(), lr=tr.lr, weight_decay=tr.weight_decay)
    steps = math.ceil(len(data.train) / tr.batch_size)
    device_data = None
    if spec.performance.data_on_device:
        items = [data.train[i] for i in range(len(data.train))]
        device_data = (torch.stack([x for x, _ in items]).to(device), torch.as_tensor([int(y) for _, y in items],
                                                                                     device=device))  # fmt: skip
    return TrialContext(trial.name, trial.axes, spec, runtime, tracker, device, data, dynamics, net, ema, opt,
                        num_classes, steps, training_forward(net, spec.performance), device_data)  # fmt: skip


def restore(ctx: TrialContext, session: Session) -> Progress:
    """Weights, EMA and optimiser from the session's checkpoint (tensors only: ``weights_only``), if any."""
    with session.restored() as ckpt_dir:
        if ckpt_dir is None:
            return Progress()
        state = load_tensors(ckpt_dir / CHECKPOINT_FILE, map_location=ctx.device)
    ctx.net.load_state_dict(state["net"])
    ctx.ema.load_state_dict(state["ema"])
    ctx.opt.load_state_dict(state["opt"])
    log.info("%s: restored from epoch %d", ctx.name, state["epoch"])
    epoch = int(state["epoch"])
    return Progress(epoch, epoch * ctx.steps_per_epoch, float(state["train_seconds"]), str(state["run_id"]))


def open_run(ctx: TrialContext, progress: Progress) -> TrialRun:
    """The trial's MLflow child run: the checkpoint's run, else this study instance's run for the trial, else new."""
    rt = ctx.runtime
    spool = Path(rt.spool_dir) / f"{ctx.name}.jsonl" if rt.spool_dir else None
    run = TrialRun.open(
        ctx.tracker, rt.experiment_id, rt.parent_run_id, rt.instance, rt.study, ctx.name, ctx.axes,
        ctx.spec.model_dump(mode="json"), progress.run_id, spool,
    )  # fmt: skip
    progress.run_id = run.run_id
    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"  # again after a resume:
    run.set_tags({keys.TAG_DEVICE: describe_device(ctx.device), keys.TAG_NODE: node})  # the trial may have moved
    if progress.epoch == 0:
        params = count_parameters(ctx.net)
        run.set_tags({keys.TAG_NETWORK_PARAMETERS: str(params)})
        summary = {keys.dynamics_key(k): v for k, v in ctx.dynamics.summary().items()}
        run.log_metrics(summary | {keys.NETWORK_PARAMETERS: params}, 0)
    return run


def restore_history(ctx: TrialContext, run: TrialRun, epoch: int) -> EvaluationHistory:
    """The per-image logits of the evaluations logged up to ``epoch`` (the restored checkpoint), from MLflow.

    Later epochs, logged before a crash but not checkpointed, are replayed and logged again; they are not read.
    """
    history = EvaluationHistory()
    if epoch == 0 or not ctx.spec.evaluation.inception_score.keep_logits:
        return history
    for eval_id, _, _ in ctx.spec.evaluation.evaluations:
        for name, arrays in run.load_arrays(keys.evaluation_dir(eval_id)).items():
            e = keys.parse_evaluation_file(name)
            if e is not None and e <= epoch and _evaluation_due(ctx.spec, e):
                history.add(eval_id, e, arrays["logits"])
                history.add_arrays(eval_id, e, arrays, ctx.spec.evaluation.inception_score.bootstrap,
                                   ctx.spec.evaluation.seed)  # fmt: skip
    return history


def decide_restored(
    ctx: TrialContext, session: Session, progress: Progress, run: TrialRun, history: EvaluationHistory
) -> Stop | None:
    """The stopping rules on the restored epoch, from the logged history: a trial that had already stopped there
    (its driver died before Ray Tune recorded the end) ends again with the same decision instead of training on."""
    if progress.epoch == 0 or not _evaluation_due(ctx.spec, progress.epoch):
        return None
    # a checkpointed epoch had a finite loss
    outcome = EpochOutcome(progress.epoch, 0.0, _verdicts(ctx, history), onsets(ctx.spec, history))
    stop = first_stop(outcome, ctx.spec)
    if stop is not None:
        log.info("%s: restored at epoch %d, where it had already stopped (%s)", ctx.name, progress.epoch, stop.rule)
        report_epoch(ctx, session, progress, run, outcome, stop, {})
    return stop


def epoch_batches(ctx: TrialContext, batch_size: int, epoch_size: int | None, order: torch.Generator) -> Iterable:
    """One epoch's shuffled batches: a pass over the training set, or ``epoch_size`` images (``epoch_order``)."""
    if epoch_size is None:
        return (device_batches(*ctx.device_data, batch_size, order) if ctx.device_data is not None
                else DataLoader(ctx.data.train, batch_size=batch_size, shuffle=True, generator=order))  # fmt: skip
    idx = epoch_order(len(ctx.data.train), epoch_size, order)
    return (indexed_batches(*ctx.device_data, batch_size, idx) if ctx.device_data is not None
            else DataLoader(ctx.data.train, batch_size=batch_size, sampler=idx.tolist()))  # fmt: skip


def train_epoch(ctx: TrialContext, progress: Progress, epoch: int) -> dict[str, float]:
    """One epoch: a pass over the training set, or ``training.epoch_size`` images (Adam, EMA, optional warm-up and
    clipping); metrics at step = epoch."""
    tr = ctx.spec.training
    seed = epoch_seed(tr.seed, epoch)
    torch.manual_seed(seed)
    gen = torch.Generator(ctx.device).manual_seed(seed)
    order = torch.Generator().manual_seed(seed)
    batches = epoch_batches(ctx, tr.batch_size, tr.epoch_size, order)
    perf, net = ctx.spec.performance, ctx.train_net if ctx.train_net is not None else ctx.net

    def loss_of(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, int]:
        x, y = batch
        x = to_input(x.to(ctx.device, non_blocking=True), perf)
        with training_autocast(ctx.device, perf):
            loss = ctx.dynamics.loss(net, x, gen, y.to(ctx.device) if ctx.num_classes else None)
        return loss.float(), x.shape[0]

    def warm_up() -> None:
        for group in ctx.opt.param_groups:
            group["lr"] = tr.lr * min(1.0, (progress.step + 1) / tr.warmup_steps)

    def after_step() -> None:
        ctx.ema.update(ctx.net)
        progress.step += 1

    t0 = time.perf_counter()
    loss = fit_epoch(ctx.net, ctx.opt, batches, loss_of, grad_clip=tr.grad_clip,
                     before_step=warm_up if tr.warmup_steps else None, after_step=after_step)  # fmt: skip
    seconds = time.perf_counter() - t0
    progress.train_seconds += seconds
    progress.epoch = epoch
    return {keys.TRAIN_LOSS: loss, keys.TRAIN_SECONDS: progress.train_seconds, keys.TRAIN_EPOCH_SECONDS: seconds}


def _evaluation_due(spec: StudySpec, epoch: int) -> bool:
    return epoch % spec.training.eval_every == 0 or epoch == spec.training.epochs


def evaluate_epoch(
    ctx: TrialContext, run: TrialRun, guides: Guides, history: EvaluationHistory, epoch: int
) -> tuple[dict[str, float], dict[str, Verdict]]:
    """Every evaluation (sampler x guidance) of the EMA weights, logged; then the plateau rule on each curve."""
    ev, isc, perf = ctx.spec.evaluation, ctx.spec.evaluation.inception_score, ctx.spec.performance
    shape = (ctx.data.channels, ctx.data.resolution, ctx.data.resolution)
    evaluations = [
        Evaluation(sampler, guidance, guides.nets.get(guidance.kind), guides.nets.get("classifier"))
        for _, sampler, guidance in ev.evaluations
    ]  # fmt: skip
    generated = generate_all(
        sampling_network(ctx.ema.model, perf), ctx.dynamics, evaluations, ev, shape, ctx.num_classes, ctx.device,
        ctx.data.num_classes, batched=perf.batch_evaluations,
    )  # fmt: skip
    metrics: dict[str, float] = {}
    unguided: dict[str, float] = {}  # sampler id -> seconds, for the guidance time overhead
    for evaluation, samples in zip(evaluations, generated, strict=True):
        res = score(samples, evaluation, ev, ctx.runtime.extractor_weights, ctx.device, ctx.data,
                    ctx.runtime.cache_dir)  # fmt: skip
        metrics |= res.metrics(isc.extractor, ev.num_samples)
        history.add(res.sampler_id, epoch, res.logits)
        history.add_scores(res.sampler_id, epoch, res.scores)
        if isc.keep_logits:
            arrays = {"logits": res.logits} | res.arrays  # the scores' per-image arrays (nearest-neighbour distances)
            arrays |= {"labels": res.labels.numpy()} if res.labels is not None else {}
            run.log_arrays(f"{keys.evaluation_dir(res.sampler_id)}/{keys.evaluation_file(epoch)}", **arrays)
        if ctx.runtime.log_images and res.grid is not None:
            run.log_image(res.grid.numpy(), key=keys.image_key(res.sampler_id), step=epoch)
        for (name, image), pixels in res.images.items():  # what a score shows (memorization: its most-copied images)
            if ctx.runtime.log_images:
                run.log_image(pixels, key=keys.score_image_key(name, image, res.sampler_id), step=epoch)
        if evaluation.guided:
            # in lockstep the seconds are shares by network rows, so their ratio would not measure guidance's cost
            metrics |= _guidance_metrics(res, None if perf.batch_evaluations else unguided.get(evaluation.sampler.id))
            if epoch == ctx.spec.training.eval_every or epoch == ctx.spec.training.epochs:
                _log_targets(run, res)  # targets depend on the eval seed only
        else:
            unguided[evaluation.sampler.id] = res.seconds
    guides.check_frozen()
    verdicts = _verdicts(ctx, history)
    for eval_id, v in verdicts.items():
        metrics[keys.convergence_key(eval_id, "state")] = keys.PLATEAU_STATES.index(v.state)
        metrics[keys.convergence_key(eval_id, "plateau_epoch")] = v.epoch if v.epoch is not None else math.nan
    return metrics, verdicts


def _verdicts(ctx: TrialContext, history: EvaluationHistory) -> dict[str, Verdict]:
    """The plateau rule on every evaluation curve so far (paired bootstrap over the kept logits)."""
    return history.verdicts(plateau_rule(ctx.spec), bootstrap_settings(ctx.spec), ctx.spec.training.epochs)


def report_epoch(
    ctx: TrialContext, session: Session, progress: Progress, run: TrialRun, outcome: EpochOutcome, stop: Stop | None,
    metrics: dict[str, float],
) -> None:  # fmt: skip
    """Report the epoch to the session (Tune), with a checkpoint when one is due or the trial ends.

    Scores are reported at the epoch they were measured only: the progress line never shows an old one as new.
    """
    tr = ctx.spec.training
    report: dict[str, Any] = {
        keys.REPORT_EPOCH: outcome.epoch,
        keys.REPORT_LOSS: outcome.loss,
        keys.REPORT_TRAIN_SECONDS: progress.train_seconds,
    }
    report |= {keys.report_key("state", ev): v.state for ev, v in outcome.verdicts.items()}
    for key, value in metrics.items():
        k = keys.parse_score_key(key)
        if k is not None and k.score == "is" and k.stat in ("mean", "ci_low", "ci_high"):
            report[keys.report_key("is" if k.stat == "mean" else f"is_{k.stat}", k.evaluation)] = value  # type: ignore
    if stop is not None:
        report |= {keys.REPORT_STATUS: stop.status, keys.REPORT_STOP_REASON: stop.reason}
    due = outcome.epoch % tr.checkpoint_every == 0 or _evaluation_due(ctx.spec, outcome.epoch)
    if stop is not None and stop.status == "diverged":
        session.report(report, None)  # a non-finite state is never checkpointed
        return
    if not (due or stop is not None):
        session.report(report, None)
        return
    with tempfile.TemporaryDirectory() as d:
        state = {
            "net": ctx.net.state_dict(), "ema": ctx.ema.state_dict(), "opt": ctx.opt.state_dict(),
            "epoch": outcome.epoch, "train_seconds": progress.train_seconds, "run_id": run.run_id,
        }  # fmt: skip
        torch.save(state, Path(d) / CHECKPOINT_FILE)
        session.report(report, Path(d))


def finish(ctx: TrialContext, run: TrialRun, stop: Stop) -> str:
    """Tag how the trial ended (rule, epoch, reason) and close its run with the matching MLflow status."""
    run.set_tags({keys.TAG_STOP_RULE: stop.rule, keys.TAG_STOP_EPOCH: str(stop.epoch),
                  keys.TAG_STOP_REASON: stop.reason[:5000]})  # fmt: skip
    if stop.status == "diverged":
        run.log_metrics({keys.TRAIN_DIVERGED: 1.0}, stop.epoch)
        log.warning("%s diverged at epoch %d (%s)", ctx.name, stop.epoch, stop.reason)
    elif stop.status == "converged":
        log.info("%s converged at epoch %d: %s", ctx.name, stop.epoch, stop.reason)
    run.finish(stop.status)
    return stop.status


@dataclass
class Guides:
    """Classifiers by guidance kind: ``classifier`` (trained; also the judge of target accuracy) and ``misguided``,
    with their weight hashes (logged as tags, re-checked after every evaluation: guides are never updated)."""

    nets: dict[str, torch.nn.Module] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, ctx: TrialContext, run: TrialRun) -> Guides:
        spec = ctx.spec
        if not any(g.guided for g in spec.evaluation.guidance):
            return cls()
        from trainables.guidance import load_classifier, misguided_classifier, weights_hash
        from trainables.guidance_classifier import classifier_key

        channels, resolution, num_classes = ctx.data.channels, ctx.data.resolution, ctx.data.num_classes
        cfg, key = spec.classifier, classifier_key(spec)
        path = (ctx.runtime.classifier_weights or {}).get(key)
        if cfg is None or path is None:
            raise RuntimeError(f"no trained noisy classifier for key {key}: the driver prepares it (study.runner)")
        nets = {"classifier": load_classifier(path, cfg.network, channels, resolution, num_classes).to(ctx.device)}
        if any(g.kind == "misguided" for g in spec.evaluation.guidance):
            nets["misguided"] = misguided_classifier(cfg.network, channels, resolution, num_classes,
                                                     cfg.misguided_seed).to(ctx.device)  # fmt: skip
        hashes = {kind: weights_hash(net) for kind, net in nets.items()}
        tags = {keys.guidance_weights_tag(kind): h for kind, h in hashes.items()}
        run.set_tags(tags | {keys.TAG_GUIDANCE_CLASSIFIER_KEY: key})
        return cls(nets, hashes)

    def check_frozen(self) -> None:
        """Guides are read, never trained: eval mode, no parameter gradients, weights unchanged since loading."""
        from trainables.guidance import weights_hash

        for kind, net in self.nets.items():
            if net.training or any(p.requires_grad for p in net.parameters()) or weights_hash(net) != self.hashes[kind]:
                raise RuntimeError(f"the {kind} guidance classifier changed during sampling; guides are never updated")


def _guidance_metrics(res: EvalResult, unguided_seconds: float | None) -> dict[str, float]:
    """Target accuracy (trained classifier at t = 0) and seconds relative to the same sampler unguided."""
    out = {}
    if res.target_accuracy is not None:
        out[keys.guidance_key(res.sampler_id, "target_accuracy")] = res.target_accuracy
    if unguided_seconds:
        out[keys.guidance_key(res.sampler_id, "time_overhead")] = res.seconds / unguided_seconds
    return out


def _log_targets(run: TrialRun, res: EvalResult) -> None:
    """The guidance target labels and their histogram, as a JSON artifact of the trial run."""
    if res.targets is None:
        return
    labels = res.targets.tolist()
    hist = torch.bincount(res.targets).tolist()
    run.log_json({"labels": labels, "histogram": hist}, keys.targets_artifact(res.sampler_id))


def tune_trainable(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: ``config = {"trial": {...}, "runtime": {...}}``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run_trial(Trial.from_config(config["trial"]), Runtime(**config["runtime"]), TuneSession())


def runtime_dict(runtime: Runtime) -> dict[str, Any]:
    return asdict(runtime)


class LocalSession:
    """Run a trial without Ray (debugging, tests): keeps the latest checkpoint in ``directory``."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.reports: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def restored(self) -> Iterator[Path | None]:
        yield self.directory if (self.directory / CHECKPOINT_FILE).exists() else None

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        self.reports.append(dict(metrics))
        if checkpoint_dir is not None:
            data = (checkpoint_dir / CHECKPOINT_FILE).read_bytes()
            atomic_write(self.directory / CHECKPOINT_FILE, lambda tmp: tmp.write_bytes(data))
