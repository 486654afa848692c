"""What runs inside one trial: train one variant, evaluate every sampler periodically, checkpoint, log.

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
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch.utils.data import DataLoader

from study.spec import StudySpec
from trainables.data import load_dataset
from trainables.dynamics import build_dynamics
from trainables.ema import EMA
from trainables.evaluation import EvalResult, evaluate
from trainables.networks import build_network, count_parameters
from trainables.tracking import TrialRun

log = logging.getLogger(__name__)
CHECKPOINT_FILE = "state.pt"


@dataclass(frozen=True)
class Runtime:
    """Everything a trial needs from the driver, resolved to absolute values before trials start."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    instance: str
    study: str
    data_dir: str
    extractor_weights: str | None = None
    log_images: bool = True
    # guidance: trained noisy classifier weights by ``guidance_classifier.classifier_key(spec)`` (trained by the driver)
    classifier_weights: dict[str, str] | None = None


def is_key(extractor: str, num_samples: int, sampler_id: str) -> str:
    """Metric-key stem naming the extractor, the sample count and the sampler (DESIGN: comparability)."""
    return f"is/{extractor}/n{num_samples}/{sampler_id}"


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


def _epoch_seed(seed: int, epoch: int) -> int:
    # Every epoch's randomness (data order, t, noise, dropout) derives from (seed, epoch): a trial restored
    # from a checkpoint replays exactly the epochs it would have run, without carrying generator states.
    return seed * 1_000_003 + epoch


def run_trial(trial: dict[str, Any], runtime: Runtime, session: Session) -> str:
    """Train and evaluate one trial; returns its final status: ``finished`` or ``diverged``."""
    spec = StudySpec.model_validate(trial["spec"])
    tr, ev = spec.training, spec.evaluation
    torch.set_num_threads(max(1, int(spec.resources.cpus)))
    device = _device(spec)

    data = load_dataset(spec.dataset, Path(runtime.data_dir))
    num_classes = data.num_classes if spec.class_conditional else 0
    dynamics = build_dynamics(spec.dynamics)
    fit_data = getattr(dynamics, "fit_data", None)
    if fit_data is not None:  # e.g. NCSNv2's sigma_1 from the largest pairwise distance of the training set
        fit_data(torch.stack([data.train[i][0] for i in range(len(data.train))]))
    torch.manual_seed(tr.seed)
    net = build_network(spec.network, data.channels, data.resolution, num_classes).to(device)
    ema = EMA(net, tr.ema_decay, tr.ema_warmup)
    opt_cls = torch.optim.AdamW if tr.optimizer == "adamw" else torch.optim.Adam
    opt = opt_cls(net.parameters(), lr=tr.lr, weight_decay=tr.weight_decay)

    start_epoch, train_seconds, run_id = 1, 0.0, None
    with session.restored() as ckpt_dir:
        if ckpt_dir is not None:
            state = torch.load(ckpt_dir / CHECKPOINT_FILE, map_location=device, weights_only=False)
            net.load_state_dict(state["net"])
            ema.load_state_dict(state["ema"])
            opt.load_state_dict(state["opt"])
            start_epoch, train_seconds, run_id = state["epoch"] + 1, state["train_seconds"], state["run_id"]
            log.info("%s: restored from epoch %d", trial["name"], state["epoch"])

    run = TrialRun.open(
        runtime.tracking_uri, runtime.experiment_id, runtime.parent_run_id, runtime.instance, runtime.study,
        trial["name"], trial["axes"], trial["spec"], run_id,
    )  # fmt: skip
    if ckpt_dir is None:
        params = count_parameters(net)
        run.set_tags({"network.parameters": str(params)})
        run.log_metrics({f"dynamics/{k}": v for k, v in dynamics.summary().items()} | {"network/parameters": params}, 0)

    shape = (data.channels, data.resolution, data.resolution)
    isc = ev.inception_score
    step = (start_epoch - 1) * math.ceil(len(data.train) / tr.batch_size)
    try:
        guides, guide_hashes = _guides(spec, runtime, (data.channels, data.resolution, data.num_classes), device, run)
        for epoch in range(start_epoch, tr.epochs + 1):
            torch.manual_seed(_epoch_seed(tr.seed, epoch))
            gen = torch.Generator(device).manual_seed(_epoch_seed(tr.seed, epoch))
            loader = DataLoader(
                data.train, batch_size=tr.batch_size, shuffle=True,
                generator=torch.Generator().manual_seed(_epoch_seed(tr.seed, epoch)),
            )  # fmt: skip
            net.train()
            t0, total, count = time.perf_counter(), 0.0, 0
            for x, y in loader:
                x = x.to(device, non_blocking=True)
                labels = y.to(device) if num_classes else None
                if tr.warmup_steps:
                    for group in opt.param_groups:
                        group["lr"] = tr.lr * min(1.0, (step + 1) / tr.warmup_steps)
                loss = dynamics.loss(net, x, gen, labels)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if tr.grad_clip:
                    torch.nn.utils.clip_grad_norm_(net.parameters(), tr.grad_clip)
                opt.step()
                ema.update(net)
                step += 1
                total, count = total + loss.item() * x.shape[0], count + x.shape[0]
            epoch_seconds = time.perf_counter() - t0
            train_seconds += epoch_seconds
            epoch_loss = total / max(count, 1)

            metrics: dict[str, float] = {
                "train/loss": epoch_loss, "train/seconds": train_seconds, "train/epoch_seconds": epoch_seconds,
            }  # fmt: skip
            report: dict[str, Any] = {"epoch": epoch, "loss": epoch_loss, "train_seconds": train_seconds}
            if not math.isfinite(epoch_loss):
                run.log_metrics({"train/diverged": 1.0}, epoch)
                run.finish("FAILED", "diverged")
                session.report(report | {"diverged": True}, None)
                log.warning("%s diverged at epoch %d (loss %s)", trial["name"], epoch, epoch_loss)
                return "diverged"

            if epoch % tr.eval_every == 0 or epoch == tr.epochs:
                unguided: dict[str, float] = {}  # sampler id -> seconds, for the guidance time overhead
                guided: list[tuple[str, EvalResult]] = []
                for _, sampler, guidance in ev.evaluations:
                    res = evaluate(
                        ema.model, dynamics, sampler, ev, shape, runtime.extractor_weights, num_classes, device,
                        reference=data, data_dir=runtime.data_dir, guidance=guidance,
                        guide=guides.get(guidance.kind), judge=guides.get("classifier"), guide_classes=data.num_classes,
                    )  # fmt: skip
                    key = is_key(isc.extractor, ev.num_samples, res.sampler_id)
                    metrics |= {
                        f"{key}/mean": res.is_mean, f"{key}/std": res.is_std,
                        f"sample/{res.sampler_id}/seconds": res.seconds, f"sample/{res.sampler_id}/nfe": res.nfe,
                    }  # fmt: skip
                    metrics |= res.extra_metrics(isc.extractor, ev.num_samples)  # fid/..., kid/... when asked
                    report[f"is/{res.sampler_id}"] = res.is_mean
                    if runtime.log_images and res.grid is not None:
                        run.log_image(res.grid.numpy(), key=f"samples/{res.sampler_id.replace(':', '/')}", step=epoch)
                    if guidance.guided:
                        guided.append((sampler.id, res))
                    else:
                        unguided[sampler.id] = res.seconds
                for sampler_id, res in guided:
                    metrics |= _guidance_metrics(res, unguided.get(sampler_id))
                    if epoch == tr.eval_every or epoch == tr.epochs:  # targets depend on the eval seed only
                        _log_targets(run, res)
                _check_frozen(guides, guide_hashes)
            run.log_metrics(metrics, epoch)

            if epoch % tr.checkpoint_every == 0 or epoch % tr.eval_every == 0 or epoch == tr.epochs:
                with tempfile.TemporaryDirectory() as d:
                    state = {
                        "net": net.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "epoch": epoch,
                        "train_seconds": train_seconds, "run_id": run.run_id, "step": step,
                    }  # fmt: skip
                    torch.save(state, Path(d) / CHECKPOINT_FILE)
                    session.report(report, Path(d))
            else:
                session.report(report, None)
    except BaseException:
        run.finish("FAILED", "errored")
        raise
    run.finish("FINISHED", "finished")
    return "finished"


def _guides(
    spec: StudySpec, runtime: Runtime, data_shape: tuple[int, int, int], device: torch.device, run: TrialRun
) -> tuple[dict[str, torch.nn.Module], dict[str, str]]:
    """Classifiers by guidance kind, ``classifier`` (trained; also the judge of target accuracy) and ``misguided``,
    with their weight hashes (logged as tags, re-checked after every evaluation)."""
    if not any(g.guided for g in spec.evaluation.guidance):
        return {}, {}
    channels, resolution, num_classes = data_shape
    from trainables.guidance import load_classifier, misguided_classifier, weights_hash
    from trainables.guidance_classifier import classifier_key

    cfg, key = spec.classifier, classifier_key(spec)
    path = (runtime.classifier_weights or {}).get(key)
    if cfg is None or path is None:
        raise RuntimeError(f"no trained noisy classifier for key {key}: the driver prepares it (study.runner)")
    guides = {"classifier": load_classifier(path, cfg.network, channels, resolution, num_classes).to(device)}
    if any(g.kind == "misguided" for g in spec.evaluation.guidance):
        guides["misguided"] = misguided_classifier(cfg.network, channels, resolution, num_classes, cfg.misguided_seed)
        guides["misguided"].to(device)
    hashes = {kind: weights_hash(net) for kind, net in guides.items()}
    tags = {f"guidance.{kind}.weights_sha256": h for kind, h in hashes.items()}
    run.set_tags(tags | {"guidance.classifier.key": key})
    return guides, hashes


def _check_frozen(guides: dict[str, torch.nn.Module], hashes: dict[str, str]) -> None:
    """Guides are read, never trained: eval mode, no parameter gradients, weights unchanged since loading."""
    from trainables.guidance import weights_hash

    for kind, net in guides.items():
        if net.training or any(p.requires_grad for p in net.parameters()) or weights_hash(net) != hashes[kind]:
            raise RuntimeError(f"the {kind} guidance classifier changed during sampling; guides are never updated")


def _guidance_metrics(res: EvalResult, unguided_seconds: float | None) -> dict[str, float]:
    """Target accuracy (trained classifier at t = 0) and seconds relative to the same sampler unguided."""
    out = {}
    if res.target_accuracy is not None:
        out[f"guidance/{res.sampler_id}/target_accuracy"] = res.target_accuracy
    if unguided_seconds:
        out[f"guidance/{res.sampler_id}/time_overhead"] = res.seconds / unguided_seconds
    return out


def _log_targets(run: TrialRun, res: EvalResult) -> None:
    """The guidance target labels and their histogram, as a JSON artifact of the trial run."""
    if res.targets is None:
        return
    labels = res.targets.tolist()
    hist = torch.bincount(res.targets).tolist()
    run.client.log_dict(run.run_id, {"labels": labels, "histogram": hist}, f"guidance/{res.sampler_id}/targets.json")


def tune_trainable(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: ``config = {"trial": {...}, "runtime": {...}}``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run_trial(config["trial"], Runtime(**config["runtime"]), TuneSession())


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
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self.directory / (CHECKPOINT_FILE + ".tmp")
            tmp.write_bytes((checkpoint_dir / CHECKPOINT_FILE).read_bytes())
            tmp.replace(self.directory / CHECKPOINT_FILE)
