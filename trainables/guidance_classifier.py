"""Training the noisy classifier for guidance as a first-class job: once per (dataset, dynamics), cached on disk.

ADM (Dhariwal & Nichol 2021, Sec. 4 and guided-diffusion ``scripts/classifier_train.py`` with ``noised=True``): the
classifier learns p(y | x_t, t) on images noised by the SAME forward process the diffusion model was trained with
(t uniform over the T steps, x_t = q_sample(x_0, t) with the diffusion's schedule; REFERENCE B.4 pitfall: a
classifier trained on another schedule or T gives gradients for the wrong noise levels), cross-entropy, AdamW.

The cache key covers the dataset spec, the dynamics spec (schedule and T) and the ``classifier`` section, so a
second study with the same triple reuses the file. Each study still logs a ``study.role=classifier`` child run with
the held-out accuracy per band of t (``classifier/accuracy``, step = band index), marked ``classifier.cached``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from study.contract.keys import (
    CLASSIFIER_ACCURACY,
    CLASSIFIER_LOSS,
    CLASSIFIER_SECONDS,
    ROLE_CLASSIFIER,
    TAG_CLASSIFIER_CACHED,
    TAG_CLASSIFIER_KEY,
    TAG_CLASSIFIER_PATH,
    TAG_INSTANCE,
    TAG_PARENT,
    TAG_ROLE,
    TAG_STUDY,
)
from study.contract.runlog import flatten
from study.contract.tracking import MetricPoint, Tracker, now_ms, retry
from trainables.data import ImageData, load_dataset
from trainables.dynamics.ddpm import q_sample
from trainables.files import atomic_torch_save
from trainables.networks import build_network
from trainables.schedules import make_schedule
from trainables.training import epoch_seed, fit_epoch

log = logging.getLogger(__name__)
Tensor = torch.Tensor
HELD_OUT_MAX = 2000  # held-out images per accuracy band (enough for a 1% standard error)


def classifier_key(spec: Any) -> str:
    """Fingerprint of what determines the trained classifier: dataset, dynamics (schedule, T), classifier section."""
    blob = json.dumps(
        {k: getattr(spec, k).model_dump(mode="json") for k in ("dataset", "dynamics", "classifier")}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def needs_classifier(spec: Any) -> bool:
    return any(g.guided for g in spec.evaluation.guidance)


@dataclass(frozen=True)
class ClassifierJob:
    """Result of ``ensure_noisy_classifier``: the weights file, whether it was trained now, and its facts."""

    key: str
    path: Path
    trained: bool
    meta: dict[str, Any]


def _tensors(ds: Any, limit: int | None = None) -> tuple[Tensor, Tensor]:
    n = len(ds) if limit is None else min(limit, len(ds))
    xs, ys = zip(*(ds[i] for i in range(n)), strict=True)
    return torch.stack(xs), torch.as_tensor(ys)


@torch.no_grad()
def accuracy_per_band(net: torch.nn.Module, ab: Tensor, x0: Tensor, y: Tensor, bands: int, seed: int) -> list[float]:
    """Held-out accuracy with t uniform inside each of ``bands`` equal bands of [0, T): how far up the noise
    levels the classifier still knows the class (near chance at t ~ T, where its gradient is least useful)."""
    net.eval()
    T = ab.shape[0]
    gen = torch.Generator().manual_seed(seed)
    out = []
    for b in range(bands):
        lo, hi = b * T // bands, max((b + 1) * T // bands, b * T // bands + 1)
        hits = 0
        for i in range(0, x0.shape[0], 500):
            xb, yb = x0[i : i + 500], y[i : i + 500]
            t = torch.randint(lo, hi, (xb.shape[0],), generator=gen)
            x_t = q_sample(ab, xb, t, torch.randn(xb.shape, generator=gen))
            hits += int((net(x_t, t.to(xb.dtype)).argmax(-1) == yb).sum())
        out.append(hits / x0.shape[0])
    return out


def train_noisy_classifier(
    data: ImageData, spec: Any, device: torch.device | str = "cpu"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train on noised training images; returns the network (CPU, eval mode) and facts (loss per epoch, accuracy)."""
    cfg = spec.classifier
    ab = make_schedule(spec.dynamics.schedule, spec.dynamics.timesteps).alphas_cumprod.to(torch.float32)
    with torch.random.fork_rng(devices=[]):  # the driver's global RNG is left as it was
        torch.manual_seed(cfg.seed)
        net = build_network(cfg.network, data.channels, data.resolution, data.num_classes).to(device)
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        gen = torch.Generator().manual_seed(cfg.seed)
        ab_dev = ab.to(device)
        losses, start = [], time.perf_counter()
        def loss_of(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, int]:
            x, y = batch
            t = torch.randint(0, ab.shape[0], (x.shape[0],), generator=gen)
            noise = torch.randn(x.shape, generator=gen)
            x, y, t, noise = x.to(device), y.to(device), t.to(device), noise.to(device)
            logits = net(q_sample(ab_dev, x, t, noise), t.to(x.dtype))
            return torch.nn.functional.cross_entropy(logits, y), x.shape[0]

        for epoch in range(cfg.epochs):
            loader = DataLoader(data.train, batch_size=cfg.batch_size, shuffle=True,
                                generator=torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch)))  # fmt: skip
            losses.append(fit_epoch(net, opt, loader, loss_of))
            log.info("noisy classifier epoch %d/%d: loss %.4f", epoch + 1, cfg.epochs, losses[-1])
        seconds = time.perf_counter() - start
    net = net.cpu().eval()
    held = data.held_out if data.held_out is not None else data.train  # no held-out split: training accuracy
    hx, hy = _tensors(held, HELD_OUT_MAX)
    acc = accuracy_per_band(net, ab, hx, hy, cfg.accuracy_buckets, seed=cfg.seed + 1)
    meta = {
        "losses": losses, "accuracy": acc, "train_seconds": seconds, "held_out": data.held_out is not None,
        "timesteps": int(ab.shape[0]), "num_classes": data.num_classes,
    }  # fmt: skip
    return net, meta


def ensure_noisy_classifier(
    spec: Any, data_dir: Path | str, cache_dir: Path | str, device: torch.device | str = "cpu"
) -> ClassifierJob:
    """The cached classifier for ``spec``'s (dataset, dynamics, classifier), training it first when absent."""
    key = classifier_key(spec)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path, meta_path = cache_dir / f"noisy-classifier-{key}.pt", cache_dir / f"noisy-classifier-{key}.json"
    if path.exists() and meta_path.exists():
        return ClassifierJob(key, path, False, json.loads(meta_path.read_text()))
    data = load_dataset(spec.dataset, data_dir, cache_dir)
    if data.num_classes < 2:
        raise ValueError(f"classifier guidance needs class labels; dataset {spec.dataset.kind!r} has none")
    log.info("training the noisy classifier %s (once; cached at %s)", key, path)
    net, meta = train_noisy_classifier(data, spec, device)
    atomic_torch_save({"state_dict": net.state_dict(), "key": key}, path)
    meta_path.write_text(json.dumps(meta | {"spec": json.loads(_spec_blob(spec))}, indent=1))
    return ClassifierJob(key, path, True, meta)


def _spec_blob(spec: Any) -> str:
    return json.dumps({k: getattr(spec, k).model_dump(mode="json") for k in ("dataset", "dynamics", "classifier")})


def log_classifier_run(
    tracker: Tracker,
    experiment_id: str,
    parent_run_id: str,
    study: str,
    instance: str,
    spec: Any,
    job: ClassifierJob,
) -> str:
    """The classifier's own child run (``study.role=classifier``); one per study instance and key (resume-safe)."""
    found = retry(lambda: tracker.find_runs(experiment_id, {TAG_INSTANCE: instance, TAG_CLASSIFIER_KEY: job.key}))
    if found:
        return found[0]
    tags = {
        TAG_PARENT: parent_run_id, TAG_STUDY: study, TAG_ROLE: ROLE_CLASSIFIER, TAG_INSTANCE: instance,
        TAG_CLASSIFIER_KEY: job.key, TAG_CLASSIFIER_CACHED: str(not job.trained).lower(),
        TAG_CLASSIFIER_PATH: str(job.path),
    }  # fmt: skip
    run_id = retry(lambda: tracker.create_run(experiment_id, f"classifier-{job.key}", tags))
    params = flatten({k: getattr(spec, k).model_dump(mode="json") for k in ("dataset", "dynamics", "classifier")})
    retry(lambda: tracker.log_batch(run_id, [], {k: v[:6000] for k, v in params.items()}, {}))
    ts = now_ms()
    points = [MetricPoint(CLASSIFIER_ACCURACY, acc, step, ts) for step, acc in enumerate(job.meta["accuracy"])]
    points += [MetricPoint(CLASSIFIER_LOSS, loss, e, ts) for e, loss in enumerate(job.meta["losses"], start=1)]
    points.append(MetricPoint(CLASSIFIER_SECONDS, job.meta["train_seconds"], 0, ts))
    retry(lambda: tracker.log_batch(run_id, points, {}, {}))
    retry(lambda: tracker.set_status(run_id, "FINISHED"))
    return run_id
