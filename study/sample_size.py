"""``python -m study sample-size``: how a checkpoint's Inception Score depends on the number of samples N.

The paper's Fig. A.1 (appendix A.4) plots a) the IS mean and b) the IS split std against the number of generated
samples for one trained model and sampler: the mean rises steeply and flattens above roughly 10k samples, and
(main text) FID keeps drifting even at 50k. This module redraws that figure for any trial checkpoint of a study.

Phases (one function each): resolve the study and its trial, load a Ray Tune checkpoint (EMA weights), sample
max(N) images ONCE from the evaluation's initial noise, run ONE feature pass, score the first N images for every N,
plot, write the CSV, log an MLflow run. Scores at each N follow shared/STATISTICS.md section 1:

* ``is_mean`` / ``is_std``: torch-fidelity's split procedure on the first N images (``study.statistics.stats``); the
  split std is the spread of IS on N/S images, not the uncertainty of the mean.
* ``is_ci_low`` / ``is_ci_high``: the 95 % bootstrap interval of the mean over those N images.
* ``is_inf_fit``: IS-infinity (Chong & Forsyth 2020, "Effectively Unbiased FID and Inception Score and where to
  find them", arXiv 1911.07023) is fitted once on all max(N) images, as the trials' ``is/.../inf`` is: IS of ONE
  split on random subsets of n images (``infinity_points`` sizes, default 15, from 0.1 max(N) to
  max(N)), linear in 1/n, intercept = IS-infinity.
  The column is that line at N, ``IS_inf + slope / N``: the one-split IS the 1/n law predicts for N images. It is
  NaN outside the fitted range, where the law is not extrapolated (at N = 20 a line fitted on 200..2000 images
  already predicts a negative IS). It is not the split mean's prediction: a split mean at N averages IS over parts
  of N/S images, so it sits near the line at N/S.
* ``fid`` (when the spec's ``extra_metrics`` has fid): FID of the first N images against the training set.

With ``evaluation.batch_size`` and ``evaluation.seed`` unchanged, the first ``evaluation.num_samples`` images are the
very images the trial scored at that epoch (same noise, same batches), so the row at N = num_samples reproduces
the trial's logged IS. Guided evaluations are not supported (they need the driver's noisy classifier).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from study.contract.keys import ROLE_SAMPLE_SIZE, TAG_PARENT, TAG_ROLE, TAG_STUDY, TAG_TRIAL, sample_size_key
from study.contract.spec import StudySpec, Trial
from study.paths import StudyPaths
from study.runner import StudyError, prepare_extractor
from trainables.files import load_tensors

log = logging.getLogger(__name__)

BOOTSTRAP_REPLICATES = 200
CHECKPOINT_GLOB = "checkpoint_*/state.pt"  # Ray Tune's checkpoint folders under tune/<trial name>/
TUNE_KEEPS = 2  # study.runner: CheckpointConfig(num_to_keep=2)
COLUMNS = ("n", "is_mean", "is_std", "is_ci_low", "is_ci_high", "is_inf_fit", "fid")


@dataclass(frozen=True)
class StudyHandle:
    """A study on disk: its directory, ``study.json`` state (MLflow ids) and its expanded spec."""

    name: str
    directory: Path
    state: dict[str, Any]
    base: StudySpec
    trials: list[Trial]


@dataclass(frozen=True)
class Checkpoint:
    """One trial checkpoint (``state.pt``: net, ema, opt, epoch, train_seconds, run_id)."""

    path: Path
    epoch: int
    state: dict[str, Any]


@dataclass(frozen=True)
class Features:
    """Per-image features of the generated images: IS logits [N, classes] and, for FID, pool features."""

    logits: np.ndarray
    fid: torch.Tensor | None
    fid_reference: Any | None  # trainables.metrics.ReferenceFeatures


@dataclass(frozen=True)
class SampleSizeResult:
    """What one sample-size study produced: the table (``COLUMNS``), IS-infinity, the files and the MLflow run."""

    study: str
    trial: str
    epoch: int
    eval_id: str
    extractor: str
    seed: int
    splits: int
    table: pd.DataFrame
    is_inf: float
    is_inf_slope: float
    figure: Path
    csv: Path
    run_id: str
    sampling_seconds: float
    nfe: int


def sample_size_study(
    study_dir_or_spec: str | Path,
    trial: str,
    eval_id: str,
    sizes: list[int],
    epoch: int | None = None,
    storage: str | Path = "studies",
    seed: int | None = None,
    extractor_weights: str | None = None,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> SampleSizeResult:
    """IS (and FID) of one trial checkpoint against the number of samples N: the paper's Fig. A.1.

    ``study_dir_or_spec``: a study name (under ``storage``), its directory or its spec file. ``trial``: the name the
    report prints (``t0_schedule=linear(scale=1)``) or Ray Tune's folder name for it. ``epoch``: the checkpoint
    (default the latest kept). ``seed``: the initial noise (default ``evaluation.seed``, the trial's own).
    ``extractor_weights``: the feature extractor's weights (default: prepared as ``study run`` does).
    ``data_dir``, ``cache_dir``: as for ``study run`` (default ``<storage>/.data``, ``<storage>/.cache``).
    Raises ``StudyError`` / ``ValueError``.
    """
    handle = resolve_study(study_dir_or_spec, storage)
    # a study given by its directory lives in that directory's storage
    paths = StudyPaths.resolve(handle.directory.parent, handle.name, data_dir, cache_dir)
    chosen = pick_trial(handle, trial)
    ev = chosen.spec.evaluation
    sampler = pick_evaluation(chosen.spec, eval_id)
    sizes = check_sizes(sizes, ev.inception_score.splits)
    ckpt = load_checkpoint(trial_directory(handle.directory / "tune", chosen.name), epoch)
    seed = ev.seed if seed is None else seed
    weights = extractor_weights or prepare_extractor(handle.base, paths.cache)[0]  # as ``study run`` prepares it
    ctx = rebuild_model(handle, chosen, ckpt, weights, paths)
    samples, nfe, seconds = sample(ctx, sampler, sizes[-1], seed)
    features = extract(samples, ctx, weights)
    table, inf = score(features, sizes, chosen.spec, seed)
    figure, csv = write_outputs(handle, chosen, ckpt.epoch, eval_id, table, inf)
    result = SampleSizeResult(
        handle.name, chosen.name, ckpt.epoch, eval_id, ev.inception_score.extractor, seed,
        ev.inception_score.splits, table, inf.value, inf.slope, figure, csv, "", seconds, nfe,
    )  # fmt: skip
    return replace(result, run_id=log_run(handle, result))


# ------------------------------------------------------------------------------------------------- resolve


def resolve_study(target: str | Path, storage: str | Path = "studies") -> StudyHandle:
    """The study named ``target`` under ``storage`` or in the directory ``target`` (its spec from ``study.json``),
    or the study of a spec file.

    The spec must still expand to the trials the study was started with (``study.json``'s fingerprint): a changed
    spec would rebuild networks that do not match the checkpoints.
    """
    from study.paths import locate_study
    from study.plan import Plan

    path = Path(target)
    spec_given = path.suffix in (".yaml", ".yml") and path.is_file()
    plan = Plan.load(path) if spec_given else None  # read, expanded and checked as ``validate`` and ``run`` do
    if plan is not None:
        name = plan.base.name
    else:  # a name under storage, or the study's directory as ``run`` prints it
        name, storage = locate_study(target, storage)
    directory = Path(storage).resolve() / name
    state_file = directory / "study.json"
    if not state_file.is_file():
        raise StudyError(f"no study {name!r} in {directory.parent} (no study.json): run it first with "
                         "`python -m study run SPEC`, or pass --storage")  # fmt: skip
    state = json.loads(state_file.read_text())
    spec_path = path if spec_given else Path(state["spec"])
    if not spec_path.is_file():
        raise StudyError(f"the spec {spec_path} recorded in {state_file} is gone; pass the spec file instead")
    plan = plan or Plan.load(spec_path)
    base, trials = plan.base, plan.trials
    if plan.fingerprint != state["fingerprint"]:
        raise StudyError(f"{spec_path} no longer expands to the trials study {name!r} was run with; "
                         "its checkpoints would not match")  # fmt: skip
    return StudyHandle(name, directory, state, base, trials)


def pick_trial(handle: StudyHandle, name: str) -> Trial:
    """The study's trial called ``name`` (or named by its Ray Tune folder); the error lists the trial names."""
    for trial in handle.trials:
        if name in (trial.name, tune_dirname(trial.name)):
            return trial
    names = ", ".join(t.name for t in handle.trials)
    raise StudyError(f"study {handle.name!r} has no trial {name!r}; its trials: {names}")


def pick_evaluation(spec: StudySpec, eval_id: str) -> Any:
    """The sampler spec of the unguided evaluation ``eval_id`` (guided ones need the driver's noisy classifier)."""
    ids = []
    for candidate, sampler, guidance in spec.evaluation.evaluations:
        ids.append(candidate)
        if candidate == eval_id:
            if guidance.guided:
                raise ValueError(f"evaluation {eval_id!r} is guided; the sample-size study supports unguided "
                                 f"evaluations only (try {sampler.id!r})")  # fmt: skip
            return sampler
    raise ValueError(f"no evaluation {eval_id!r} in the spec; its evaluations: {', '.join(ids)}")


def check_sizes(sizes: list[int], splits: int) -> list[int]:
    """Sorted distinct sample counts, each at least the number of IS splits (and 2)."""
    out = sorted({int(n) for n in sizes})
    low = max(2, splits)
    if not out or out[0] < low:
        raise ValueError(f"--n needs sample counts of at least {low} (inception_score.splits = {splits}), got {sizes}")
    return out


# ------------------------------------------------------------------------------------------- load checkpoint

# Ray Tune replaces these characters in a trial's folder name (``ray.tune.experiment.trial.Trial._generate_dirname``,
# Ray 2.60): the trial ``t0_schedule=linear(scale=1)`` lives in ``tune/t0_schedule=linear_scale=1_/``.
_TUNE_UNSAFE = re.compile(r'[/()<>:"\\|?*]')


def tune_dirname(trial_name: str) -> str:
    """The folder name Ray Tune makes of ``trial_name`` (``study.runner`` names folders after trials)."""
    return _TUNE_UNSAFE.sub("_", trial_name)


def trial_directory(tune_dir: Path, trial_name: str) -> Path:
    """The folder of the trial called ``trial_name`` under Ray Tune's experiment directory.

    Looked up by the name the trial recorded in its ``params.json`` (Tune writes the trial's config there), so it
    survives however Tune spells the folder (characters replaced, a suffix added when the folder already existed);
    the folder of the most recent checkpoint wins when a name has several. Without ``params.json`` (a trial that
    never started, or checkpoints copied by hand): Tune's spelling of the name, else the name itself.
    """
    recorded = []
    for params in tune_dir.glob("*/params.json"):
        try:
            config = json.loads(params.read_text())
        except (OSError, ValueError):
            continue  # a params.json being written right now; the fallbacks below still apply
        trial = config.get("trial") if isinstance(config, dict) else None
        if isinstance(trial, dict) and trial.get("name") == trial_name:
            recorded.append(params.parent)
    if recorded:
        return max(recorded, key=lambda d: max((p.stat().st_mtime for p in d.glob(CHECKPOINT_GLOB)), default=0.0))
    spelled = tune_dir / tune_dirname(trial_name)
    return spelled if spelled.is_dir() else tune_dir / trial_name



def load_checkpoint(trial_dir: Path, epoch: int | None = None) -> Checkpoint:
    """The trial's checkpoint at ``epoch`` (default: the latest kept) from ``tune/<trial>/checkpoint_*/state.pt``."""
    found: dict[int, tuple[Path, dict[str, Any]]] = {}
    for path in sorted(trial_dir.glob(CHECKPOINT_GLOB)):
        state = load_tensors(path, mmap=True)
        found[int(state["epoch"])] = (path, state)
    if not found:
        raise StudyError(f"no checkpoints under {trial_dir} ({CHECKPOINT_GLOB}): has this trial run yet?")
    chosen = max(found) if epoch is None else epoch
    if chosen not in found:
        available = ", ".join(str(e) for e in sorted(found))
        raise StudyError(f"no checkpoint of epoch {epoch} under {trial_dir}; available epochs: {available} "
                         f"(Ray Tune keeps only the last {TUNE_KEEPS} checkpoints of a trial)")  # fmt: skip
    path, state = found[chosen]
    log.info("checkpoint %s (epoch %d)", path, chosen)
    return Checkpoint(path, chosen, state)


def rebuild_model(handle: StudyHandle, trial: Trial, ckpt: Checkpoint, weights: str | None, paths: StudyPaths) -> Any:
    """The trial's network, dynamics and data exactly as the trial builds them, with the checkpoint's EMA weights."""
    from study.contract.store import connect
    from trainables.trainable import Runtime, build

    s = handle.state
    runtime = Runtime(s["tracking_uri"], s["experiment_id"], s["parent_run_id"], s["instance"], handle.name,
                      str(paths.data), str(paths.cache), extractor_weights=weights, log_images=False)  # fmt: skip
    ctx = build(trial, runtime, connect(runtime.tracking_uri))
    ctx.ema.load_state_dict(ckpt.state["ema"])
    ctx.ema.model.eval()
    return ctx


# ---------------------------------------------------------------------------------------------------- sample


class _SamplingProgress:
    """Proxy of a trial's dynamics that logs progress whenever ``generate`` converts a finished batch."""

    def __init__(self, dynamics: Any, total: int, every_s: float = 10.0):
        self._dynamics, self._total, self._every = dynamics, total, every_s
        self._done, self._start, self._last = 0, time.perf_counter(), 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dynamics, name)

    def to_data(self, x: torch.Tensor) -> torch.Tensor:
        self._done += x.shape[0]
        elapsed = time.perf_counter() - self._start
        if elapsed - self._last >= self._every or self._done >= self._total:
            self._last = elapsed
            eta = elapsed / self._done * (self._total - self._done)
            log.info("sampled %d/%d images (%.0f s, about %.0f s left)", self._done, self._total, elapsed, eta)
        return self._dynamics.to_data(x)


def sample(ctx: Any, sampler: Any, num_samples: int, seed: int) -> tuple[torch.Tensor, int, float]:
    """(uint8 images, NFE per sample, seconds): ``num_samples`` images from the EMA weights, in the trial's batches.

    The trial's ``evaluation.batch_size`` and the evaluation seed give the trial's own initial noise, so the first
    ``evaluation.num_samples`` images are the ones the trial scored (Fig. A.1 uses one pool for every N).
    """
    from trainables.evaluation import generate
    from trainables.metrics import to_uint8

    ev = ctx.spec.evaluation
    shape = (ctx.data.channels, ctx.data.resolution, ctx.data.resolution)
    log.info("sampling %d images with %s on %s (seed %d, batches of %d)", num_samples, sampler.id, ctx.device,
             seed, ev.batch_size)  # fmt: skip
    dynamics = _SamplingProgress(ctx.dynamics, num_samples)
    samples, nfe, _, seconds = generate(ctx.ema.model, dynamics, sampler, shape, num_samples, ev.batch_size, seed,
                                        ctx.num_classes, ctx.device)  # fmt: skip
    return to_uint8(samples), nfe, seconds


def extract(images: torch.Tensor, ctx: Any, weights: str | None) -> Features:
    """ONE feature pass over all images: IS logits, plus FID features and the training-set reference if asked."""
    from trainables.metrics import extract_features, metric_layer, reference_features
    from trainables.metrics import extractor_weights as resolve_weights

    ev, isc = ctx.spec.evaluation, ctx.spec.evaluation.inception_score
    weights = resolve_weights(isc.extractor, weights)
    with_fid = "fid" in isc.extra_metrics
    layers = {"isc": metric_layer(isc.extractor, "isc")} | ({"fid": metric_layer(isc.extractor, "fid")}
                                                             if with_fid else {})  # fmt: skip
    log.info("extracting %s features of %d images", isc.extractor, images.shape[0])
    feats = extract_features(images, isc.extractor, weights, tuple(layers.values()), ev.batch_size)
    logits = feats[layers["isc"]].double().cpu().numpy()
    if not with_fid:
        return Features(logits, None, None)
    data = ctx.data
    ref = reference_features(data.train, data.key, isc.extractor, weights, Path(ctx.runtime.cache_dir),
                             isc.reference_samples, ev.batch_size)  # fmt: skip
    return Features(logits, feats[layers["fid"]], ref)


# ----------------------------------------------------------------------------------------------------- score


def score(features: Features, sizes: list[int], spec: StudySpec, seed: int) -> tuple[pd.DataFrame, Any]:
    """The table (``COLUMNS``, one row per N, the first N images each) and IS-infinity of all max(N) images."""
    from study.statistics.stats import bootstrap_is, inception_score, is_infinity

    isc = spec.evaluation.inception_score
    inf = is_infinity(features.logits[: sizes[-1]], isc.infinity_points or 15, seed=seed)
    rows = []
    for n in sizes:
        logits = features.logits[:n]
        mean, std = inception_score(logits, isc.splits, isc.shuffle)
        low, high = bootstrap_is(logits, isc.splits, isc.shuffle, BOOTSTRAP_REPLICATES, seed).ci()
        fid = fid_at(features, n) if features.fid is not None else math.nan
        rows.append((n, mean, std, float(low[0]), float(high[0]), _fit_at(inf, n), fid))
    return pd.DataFrame(rows, columns=list(COLUMNS)), inf


def _fit_at(inf: Any, n: int) -> float:
    """The IS-infinity line at n images, inside the range it was fitted on; NaN outside (no extrapolation)."""
    return inf.at(n) if inf.sizes.min() <= n <= inf.sizes.max() else math.nan


def fid_at(features: Features, n: int) -> float:
    """FID of the first ``n`` images against the training set (torch-fidelity, as trainables/scores.py)."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    stats = fid_features_to_statistics(features.fid[:n])
    ref = features.fid_reference.fid_statistics()
    return float(fid_statistics_to_metric(stats, ref, False)["frechet_inception_distance"])


# ------------------------------------------------------------------------------------------------------ plot


def plot(table: pd.DataFrame, inf: Any, splits: int, extractor: str, title: str) -> Any:
    """Fig. A.1: a) IS mean vs N with its bootstrap CI and the IS-infinity fit, b) IS split std vs N, c) FID vs N."""
    import seaborn as sns
    from matplotlib.figure import Figure

    with_fid = bool(np.isfinite(table["fid"]).any())
    panels = 3 if with_fid else 2
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
        fig = Figure(figsize=(5.2 * panels, 4.2), layout="constrained")
        axs = fig.subplots(1, panels)
        _plot_mean(axs[0], table, inf, extractor)
        _plot_series(axs[1], table, "is_std", f"IS split std ({splits} splits)", "b) IS standard deviation", "C1")
        if with_fid:
            _plot_series(axs[2], table, "fid", f"FID ({extractor})", "c) FID", "C2")
        fig.suptitle(title)
    return fig


def _plot_mean(ax: Any, table: pd.DataFrame, inf: Any, extractor: str) -> None:
    """The split mean with its bootstrap band; the IS-infinity fit (one-split IS on n images, line over the fitted
    range) and the IS-infinity asymptote as a labelled dashed line."""
    n = table["n"].to_numpy(dtype=float)
    ax.fill_between(n, table["is_ci_low"], table["is_ci_high"], color="C0", alpha=0.2, label="95% bootstrap CI")
    ax.plot(n, table["is_mean"], "o-", color="C0", label="IS mean (first N images)")
    ax.plot(inf.sizes, inf.scores, "x", color="C3", markersize=4, label="IS of 1 split on n images")
    grid = np.geomspace(inf.sizes.min(), inf.sizes.max(), 100)
    ax.plot(grid, inf.at(grid), color="C3", linewidth=1.2, label=f"1/n fit: {inf.value:.3g} + ({inf.slope:.3g})/n")
    ax.axhline(inf.value, color="C3", linestyle="--", linewidth=1)
    ax.annotate(f"IS∞ = {inf.value:.3f} (Chong & Forsyth 2020)", (n.min(), inf.value), textcoords="offset points",
                xytext=(2, 4), color="C3", fontsize=9)  # fmt: skip
    ax.set_xscale("log")
    ax.set(xlabel="number of samples N (n for the fit)", ylabel=f"IS ({extractor})", title="a) IS mean")
    ax.legend(fontsize=8, loc="lower right")


def _plot_series(ax: Any, table: pd.DataFrame, column: str, ylabel: str, title: str, colour: str) -> None:
    ax.plot(table["n"], table[column], "o-", color=colour)
    ax.set_xscale("log")
    ax.set(xlabel="number of samples N", ylabel=ylabel, title=title)


def write_outputs(
    handle: StudyHandle, trial: Trial, epoch: int, eval_id: str, table: pd.DataFrame, inf: Any
) -> tuple[Path, Path]:
    """The figure and the CSV as ``<storage>/<study>/sample_size/<trial>-e<epoch>-<eval>.{png,csv}``."""
    isc = trial.spec.evaluation.inception_score
    out = handle.directory / "sample_size"
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{trial.name}-e{epoch}-{eval_id}"
    title = f"{handle.name} / {trial.name} / epoch {epoch} / {eval_id}"
    figure = save_figure(plot(table, inf, isc.splits, isc.extractor, title), out / f"{stem}.png")
    return figure, write_csv(table, out / f"{stem}.csv")


def save_figure(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    log.info("wrote %s", path)
    return path


def write_csv(table: pd.DataFrame, path: Path) -> Path:
    """The table with NaN written as ``nan`` (FID when not computed)."""
    table.to_csv(path, index=False, na_rep="nan")
    return path


# ------------------------------------------------------------------------------------------------------- log


def run_metrics(result: SampleSizeResult) -> dict[int, dict[str, float]]:
    """The table's metrics by step (step = N; FID only where computed) and IS-infinity (step 0)."""
    out: dict[int, dict[str, float]] = {0: {sample_size_key(result.extractor, result.eval_id, "is_inf"): result.is_inf}}
    for row in result.table.itertuples(index=False):
        for stat in ("is_mean", "is_std", "is_ci_low", "is_ci_high", "fid"):
            value = float(getattr(row, stat))
            if math.isfinite(value):
                out.setdefault(int(row.n), {})[sample_size_key(result.extractor, result.eval_id, stat)] = value
    return out


def log_run(handle: StudyHandle, result: SampleSizeResult) -> str:
    """A new run (role sample-size, child of the study's parent run) with the table, IS-infinity and files."""
    from study.contract.experiment import log_metrics
    from study.contract.store import connect
    from study.contract.tracking import retry

    tracker = connect(handle.state["tracking_uri"])
    tags = {TAG_ROLE: ROLE_SAMPLE_SIZE, TAG_STUDY: handle.name, TAG_TRIAL: result.trial,
            TAG_PARENT: handle.state["parent_run_id"]}  # fmt: skip
    name = f"sample-size {result.trial} e{result.epoch} {result.eval_id}"
    run_id = retry(lambda: tracker.create_run(handle.state["experiment_id"], name, tags))
    params = {"epoch": result.epoch, "eval": result.eval_id, "seed": result.seed, "n_max": int(result.table["n"].max()),
              "splits": result.splits, "bootstrap_replicates": BOOTSTRAP_REPLICATES}  # fmt: skip
    try:
        for step, metrics in run_metrics(result).items():
            log_metrics(tracker, run_id, metrics, step)
        retry(lambda: tracker.log_batch(run_id, [], {k: str(v) for k, v in params.items()}, {}))
        for path in (result.figure, result.csv):
            retry(lambda p=path: tracker.log_artifact(run_id, Path(p), "sample_size"))
    except BaseException:
        retry(lambda: tracker.set_status(run_id, "FAILED"))
        raise
    retry(lambda: tracker.set_status(run_id, "FINISHED"))
    log.info("tracking run %s (%s)", run_id, name)
    return run_id


def summary_lines(result: SampleSizeResult) -> list[str]:
    """The CLI's stdout: what the columns are, one line per N (mean ± split std [bootstrap CI], FID when present),
    IS-infinity, files."""
    fid = "; FID of the first N images against the training set" if np.isfinite(result.table["fid"]).any() else ""
    lines = [f"{result.trial}, epoch {result.epoch}, {result.eval_id}: IS ({result.extractor}) of the first N samples "
             f"as mean ± split std ({result.splits} splits: the spread of IS over N/{result.splits} images, not the "
             f"mean's uncertainty) [95 % bootstrap interval of the mean, {BOOTSTRAP_REPLICATES} replicates]{fid}"]
    for row in result.table.itertuples(index=False):
        fid = f"  FID {row.fid:.2f}" if math.isfinite(row.fid) else ""
        lines.append(f"n={row.n:>5}  IS {row.is_mean:.2f} ± {row.is_std:.2f} "
                     f"[{row.is_ci_low:.2f}, {row.is_ci_high:.2f}]{fid}")  # fmt: skip
    n_max = int(result.table["n"].max())
    lines.append(f"IS-infinity: {result.is_inf:.3f}  (Chong & Forsyth 2020, fitted on {n_max} images)")
    lines.append(f"figure: {result.figure}  table: {result.csv}  MLflow run: {result.run_id}")
    return lines
