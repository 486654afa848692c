"""Evaluations of one checkpoint: sample N images per (sampler, guidance) on the EMA weights, time them, score them.

The images are generated once per (checkpoint, sampler, guidance): one evaluation after another, or all of them
together in lockstep (``performance.batch_evaluations``, trainables/lockstep.py). One feature pass then feeds every
registered score (trainables/scores.py), and the per-image logits are returned (float16) so the trial can keep them
as an artifact.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torchvision.utils import make_grid

from study.contract import keys
from trainables.data import ImageData
from trainables.dynamics import Dynamics
from trainables.guidance import classifier_grad, target_accuracy
from trainables.lockstep import Lockstep
from trainables.metrics import extractor_weights as resolve_weights
from trainables.metrics import image_metrics, reference_features, to_uint8, training_set
from trainables.samplers import SAMPLERS, sampler_from_spec, view
from trainables.scores import HasScores, ScoreSettings, needs, stored_logits

Tensor = torch.Tensor


@dataclass(frozen=True)
class EvalResult(HasScores):
    """One evaluation (sampler x guidance) of one checkpoint: its scores, per-image logits and cost."""

    sampler_id: str  # the evaluation id: <sampler id>[:<guidance>-<scale>]
    scores: dict[str, dict[str, float]]  # {score: {stat: value}} (trainables/scores.py)
    logits: np.ndarray  # [N, classes] float16: the IS logits as kept in the evaluation artifact
    seconds: float
    nfe: int
    grid: Tensor | None  # uint8 HWC, the first ``grid_images`` samples
    labels: Tensor | None  # class labels the samples were drawn for (class-conditional models)
    targets: Tensor | None = None  # guidance target labels (guided evaluations)
    target_accuracy: float | None = None  # share of samples the trained classifier assigns to their target
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # scores' per-image arrays (keys.score_array)
    images: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # scores' images (keys.score_image_key)

    def metrics(self, extractor: str, num_samples: int) -> dict[str, float]:
        """Every score statistic and the sampling cost under their keys (study/contract/keys.py)."""
        out = {
            keys.score_key(score, extractor, num_samples, self.sampler_id, stat): value
            for score, stats in self.scores.items() for stat, value in stats.items()
        }  # fmt: skip
        return out | {keys.sample_key(self.sampler_id, "seconds"): self.seconds,
                      keys.sample_key(self.sampler_id, "nfe"): self.nfe}  # fmt: skip


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a checkpoint: a sampler and a guidance setting (``GuidanceSpec``) with its classifiers:
    the ``guide`` whose gradient steers the sampler (trained or misguided) and the trained ``judge`` that scores
    how many samples land in their target class."""

    sampler: Any
    guidance: Any = None
    guide: torch.nn.Module | None = None
    judge: torch.nn.Module | None = None

    @property
    def guided(self) -> bool:
        return self.guidance is not None and self.guidance.guided

    @property
    def id(self) -> str:
        """``<sampler id>[:<guidance>-<scale>]``, the evaluation's name in every metric key."""
        return self.guidance.eval_id(self.sampler.id) if self.guidance is not None else self.sampler.id


class Generated(NamedTuple):
    """Samples in [-1, 1] on CPU, NFE per sample, the labels they were drawn for (guidance targets when guided), and
    the wall seconds they took (in lockstep: the evaluation's share of the group's wall time, by network rows)."""

    samples: Tensor
    nfe: int
    labels: Tensor | None
    seconds: float


def _synchronize(device: torch.device | str) -> None:
    if torch.cuda.is_available() and str(device).startswith("cuda"):
        torch.cuda.synchronize()


def generate(
    net: torch.nn.Module,
    dynamics: Dynamics,
    sampler_spec: Any,
    shape: tuple[int, int, int],
    num_samples: int,
    batch_size: int,
    seed: int,
    num_classes: int = 0,
    device: torch.device | str = "cpu",
    guide: torch.nn.Module | None = None,
    guidance_scale: float = 1.0,
    guide_classes: int = 0,
) -> Generated:
    """Samples of one sampler, in batches of ``batch_size``.

    The noise (and the labels) depend only on ``seed``, so every evaluation of every trial starts
    from the same latents: differences between curves come from the models and samplers alone.
    With a ``guide`` (classifier guidance, ADM Alg. 1/2) the returned labels are the guidance targets: the model's
    class labels for a class-conditional model, else uniform over ``guide_classes`` from a second generator seeded
    from ``seed``, so a guided run starts from exactly the noise of the unguided run of the same sampler.
    """
    fn, params = sampler_from_spec(sampler_spec)
    gen = torch.Generator(device).manual_seed(seed)
    target_gen = torch.Generator(device).manual_seed(seed + 1) if guide is not None and not num_classes else None
    out, labels_out, nfe = [], [], 0
    _synchronize(device)
    start = time.perf_counter()
    for lo in range(0, num_samples, batch_size):
        n = min(batch_size, num_samples - lo)
        noise = torch.randn((n, *shape), generator=gen, device=device)
        labels = torch.randint(0, num_classes, (n,), generator=gen, device=device) if num_classes else None
        targets, extra = labels, {}
        if guide is not None:
            if targets is None:
                targets = torch.randint(0, guide_classes, (n,), generator=target_gen, device=device)
            extra["cond_fn"] = classifier_grad(guide, targets, guidance_scale)
        with torch.no_grad():  # grad is enabled only inside cond_fn
            model = view(dynamics.sampling_model(net, labels), SAMPLERS[sampler_spec.kind].needs)
            result = fn(model, noise, generator=gen, **params, **extra)
        out.append(dynamics.to_data(result.x).clamp(-1, 1).float().cpu())
        labels_out.append(targets.cpu() if targets is not None else None)
        nfe = result.nfe
    _synchronize(device)
    seconds = time.perf_counter() - start
    labels = torch.cat(labels_out) if labels_out and labels_out[0] is not None else None
    return Generated(torch.cat(out), nfe, labels, seconds)


def generate_all(
    net: torch.nn.Module,
    dynamics: Dynamics,
    evaluations: list[Evaluation],
    eval_spec: Any,
    shape: tuple[int, int, int],
    num_classes: int = 0,
    device: torch.device | str = "cpu",
    guide_classes: int = 0,
    batched: bool = False,
) -> Iterator[Generated]:
    """Every evaluation's samples (``generate`` with the evaluation spec's count, batch and seed), one after another
    or, ``batched``, in lockstep: each evaluation's sampler runs its own loop, and every step the network calls of
    all of them are one forward (trainables/lockstep.py). The samples are the same either way up to floating point;
    in lockstep an evaluation's seconds are its share of the common wall time, by the network rows it used.
    One after another, each evaluation is generated when the iterator reaches it, so only one is held at a time."""
    for e in evaluations:
        if e.guided and (e.guide is None or e.judge is None or (not num_classes and guide_classes < 2)):
            raise ValueError(
                f"guidance {e.guidance.kind!r} needs a guide, the trained (judge) classifier and its classes"
            )

    def job(e: Evaluation) -> Any:
        return lambda model: generate(
            model, dynamics, e.sampler, shape, eval_spec.num_samples, eval_spec.batch_size, eval_spec.seed,
            num_classes, device, e.guide if e.guided else None, e.guidance.scale if e.guided else 1.0, guide_classes,
        )  # fmt: skip

    if not batched or len(evaluations) < 2:
        return (job(e)(net) for e in evaluations)
    _synchronize(device)
    together = Lockstep(net).run([job(e) for e in evaluations])
    return iter([g._replace(seconds=s) for g, s in zip(together.values, together.seconds, strict=True)])


def _cache(cache_dir: str | Path | None) -> Path:
    if cache_dir is None:
        raise ValueError("reference features are cached: pass cache_dir (the trial's Runtime.cache_dir) to score")
    return Path(cache_dir)


def score(
    generated: Generated,
    evaluation: Evaluation,
    eval_spec: Any,
    extractor_weights: str | None,
    device: torch.device | str = "cpu",
    reference: ImageData | None = None,
    cache_dir: str | Path | None = None,
) -> EvalResult:
    """The Inception Score (and the ``extra_metrics``: FID, KID, memorization, precision, recall) of one
    evaluation's samples, from one feature pass.

    ``reference`` is the training data those scores compare against; what each needs (trainables/scores.py:
    the FID/KID reference features, the whole training set with its held-out set) is prepared here, its features
    cached under ``cache_dir`` (the trial's ``Runtime.cache_dir``). ``extractor_weights`` (resolved by the driver)
    falls back to the spec's path. A guided evaluation also reports the share of samples the trained classifier
    (``judge``, read at t = 0) assigns to their target.
    """
    samples, nfe, labels, seconds = generated
    images = to_uint8(samples)
    isc = eval_spec.inception_score
    weights = extractor_weights or getattr(isc, "weights_path", None)
    extra = tuple(getattr(isc, "extra_metrics", ()))
    wanted = needs(extra)
    ref = train = None
    if wanted and reference is None:
        raise ValueError(f"{', '.join(extra)} need the training data: pass reference=ImageData to score")
    if reference is not None and "reference" in wanted:
        ref = reference_features(
            reference.train, reference.key, isc.extractor, resolve_weights(isc.extractor, weights),
            _cache(cache_dir), isc.reference_samples, eval_spec.batch_size,
        )  # fmt: skip
    if reference is not None and "training_set" in wanted:
        train = training_set(
            reference.train, reference.held_out, reference.key, isc.extractor,
            resolve_weights(isc.extractor, weights), _cache(cache_dir), eval_spec.batch_size,
        )  # fmt: skip
    settings = ScoreSettings(
        isc.splits, isc.shuffle, getattr(isc, "bootstrap", 0), getattr(isc, "infinity_points", 0),
        getattr(isc, "kid_subset_size", 1000), eval_spec.seed, ref, train,
    )  # fmt: skip
    m = image_metrics(images, isc.extractor, weights, ("is", *extra), settings, eval_spec.batch_size)
    grid = None
    if eval_spec.grid_images:
        k = min(eval_spec.grid_images, images.shape[0])
        grid = make_grid(images[:k], nrow=int(k**0.5) or 1, padding=1).permute(1, 2, 0).contiguous()
    guided = evaluation.guided
    acc = None
    if guided and labels is not None:
        acc = target_accuracy(evaluation.judge, samples.to(device), labels, eval_spec.batch_size)
    return EvalResult(
        evaluation.id, m.scores, stored_logits(m.logits), seconds, nfe, grid, labels, labels if guided else None, acc,
        m.arrays, m.images,
    )  # fmt: skip
