"""``python -m study run``: a spec becomes a Ray Tune grid of trials logging into one MLflow experiment.

Study state lives in ``<storage>/<study name>/``: ``study.json`` (instance id, spec fingerprint, MLflow
ids), ``tune/`` (Ray Tune's experiment directory with trial checkpoints) and ``report/``. Running the same
spec again resumes an unfinished study (Tuner.restore) into the same MLflow runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from study import interrupts
from study.contract import keys
from study.contract.experiment import (
    chart_view,
    create_parent_run,
    ensure_experiment,
    log_metrics,
    save_chart_view,
    view_link,
)
from study.contract.keys import STATUSES
from study.contract.runlog import replay_spools
from study.contract.spec import StudySpec
from study.contract.store import TrackingConfig, connect, resolve_tracking
from study.contract.tracking import Tracker, retry
from study.paths import StudyPaths, UnsafePath
from study.plan import Plan
from trainables.files import atomic_write
from trainables.guidance_classifier import ClassifierJob, classifier_key
from trainables.trainable import Runtime, runtime_dict

log = logging.getLogger(__name__)

# Quiet, deterministic Ray Tune defaults for a CLI (each can still be overridden from the environment).
RAY_ENV = {
    "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_DEDUP_LOGS": "0",
    # MLflow's HTTP client retries each request for minutes by default; the trials' own retry and spool
    # (study.contract.runlog.TrialRun) handle an outage, so a failing write gives up within about a minute
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}


TRACKING_CHECK_SECONDS = 3.0  # a down server is refused in about this long, before Ray starts


class StudyError(Exception):
    """A study that cannot start or continue; the message says what to do."""


class StudyInterrupted(Exception):
    """Ctrl-C (SIGINT) or SIGTERM ended the study during ``stage``; ``saved`` says what was kept for the resume
    (running the same spec again). Ray is stopped and its processes are gone by the time this is raised."""

    def __init__(self, stage: str, saved: str):
        super().__init__(f"interrupted during {stage}: {saved}")
        self.stage, self.saved = stage, saved


@dataclass
class Stages:
    """The stage a study is in (for the interrupt message); each stage that completes logs its duration, so the
    minutes before the first epoch (a classifier to train, Ray to start) never pass without a word."""

    current: str = "preparation"

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.current = name
        t0 = time.perf_counter()
        yield
        log.info("stage %s done in %.1f s", name, time.perf_counter() - t0)


@dataclass(frozen=True)
class StudyOutcome:
    """Trial names by how they ended (study/contract/keys.py ``Status``); ``converged`` trials stopped early."""

    finished: list[str]
    diverged: list[str]
    errored: list[str]
    report: Path | None
    study_dir: Path
    converged: list[str] = field(default_factory=list)
    unlogged: dict[str, int] = field(default_factory=dict)  # writes an outage kept in a trial's spool, by trial

    @property
    def exit_code(self) -> int:
        return 1 if self.errored else 0


def _trial_name(trial: Any) -> str:
    return trial.config["trial"]["name"]


def _result_name(result: Any) -> str:
    """A Tune result's trial name; a trial that never started (the study was interrupted first) has no config, only
    its folder."""
    trial = (result.config or {}).get("trial") or {}
    return trial.get("name") or (Path(result.path).name if result.path else "?")


@dataclass(frozen=True)
class Prepared:
    """What the driver makes once, before any trial starts, so trials never download or train it themselves."""

    extractor_weights: str | None
    references: dict[str, float]  # reference IS (real images, noise) and extractor facts, logged on the parent
    classifiers: list[ClassifierJob]  # noisy classifiers for guidance, one per (dataset, dynamics, classifier)


@dataclass(frozen=True)
class Tracked:
    """The study's place in MLflow: experiment, parent run and this study instance (``study.json``)."""

    tracker: Tracker
    tracking: TrackingConfig
    experiment: str
    experiment_id: str
    parent_run_id: str
    instance: str


def prepare_extractor(spec: StudySpec, cache_dir: Path) -> tuple[str | None, dict[str, float]]:
    """Weights path of the IS feature extractor (its declaration trains, downloads or checks it) and facts to log."""
    from trainables.metrics import UnsafeFile, WeightsUnavailable, extractor_decl

    try:
        return extractor_decl(spec.evaluation.inception_score.extractor).prepare(spec, cache_dir)
    except (WeightsUnavailable, UnsafeFile, ValueError) as e:
        raise StudyError(str(e)) from None


def reference_scores(spec: StudySpec, weights: str | None, data_dir: Path, cache_dir: Path) -> dict[str, float]:
    """IS of real training images and of Gaussian noise at the study's sample count: the curve's bounds."""
    import torch

    from trainables.data import load_dataset
    from trainables.metrics import extractor_decl, inception_score, to_uint8

    ev, isc = spec.evaluation, spec.evaluation.inception_score
    if not extractor_decl(isc.extractor).fast_on_cpu and not torch.cuda.is_available():
        return {}  # Inception on CPU takes minutes for a few thousand images; skip the references there
    data = load_dataset(spec.dataset, data_dir, cache_dir)
    n = min(ev.num_samples, len(data.train))
    real = torch.stack([data.train[i][0] for i in range(n)])
    noise = torch.randn(real.shape, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    out = {}
    for name, x in (("real", real), ("noise", noise)):
        score = inception_score(to_uint8(x), isc.extractor, weights, isc.splits, isc.shuffle)
        out[keys.reference_key("is", isc.extractor, n, name, "mean")] = score.mean
        out[keys.reference_key("is", isc.extractor, n, name, "std")] = score.std
    return out


def _local_resource_problems(spec: StudySpec) -> list[str]:
    """What a local Ray (no ``--address``) could never give one trial: found before Ray starts."""
    import torch

    cpus, gpus = os.cpu_count() or 1, torch.cuda.device_count()
    problems = []
    if spec.resources.gpus > gpus:
        problems.append(
            f"each trial asks for resources.gpus={spec.resources.gpus:g} but this machine has {gpus} GPU(s): trials "
            "would wait forever. Lower resources.gpus or connect with --address to a GPU cluster."
        )
    if spec.resources.cpus > cpus:
        problems.append(f"each trial asks for resources.cpus={spec.resources.cpus:g}; this machine has {cpus} CPUs")
    return problems


def _init_ray(address: str | None, spec: StudySpec) -> None:
    for k, v in RAY_ENV.items():
        os.environ.setdefault(k, v)
    import ray

    ray.init(
        address=address or "local",
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        ignore_reinit_error=True,
    )
    interrupts.install()  # ray.init made SIGTERM a bare sys.exit
    available = ray.cluster_resources()
    need_gpu, need_cpu = spec.resources.gpus, spec.resources.cpus
    if need_gpu > available.get("GPU", 0):
        ray.shutdown()
        raise StudyError(
            f"each trial asks for resources.gpus={need_gpu:g} but the Ray cluster has {available.get('GPU', 0):g} "
            "GPUs: trials would wait forever. Lower resources.gpus or connect with --address to a GPU cluster."
        )
    if need_cpu > available.get("CPU", 0):
        ray.shutdown()
        raise StudyError(
            f"each trial asks for resources.cpus={need_cpu:g}; the cluster has {available.get('CPU', 0):g}"
        )


def run_study(
    spec_path: str | Path,
    *,
    address: str | None = None,
    storage: str | Path = "studies",
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    fresh: bool = False,
    write_report: bool = True,
) -> StudyOutcome:
    """Run (or resume) a study. Raises ``SpecError`` for a bad spec and ``StudyError`` when it cannot start.

    Phases: plan (read the spec) -> check (paths, resources, resumability) -> prepare (data, extractor, reference
    scores, guidance classifiers) -> track (experiment, parent run) -> launch (Ray Tune) -> conclude (statuses,
    report). Datasets live in ``data_dir``, everything derived goes to one cache, ``cache_dir`` (defaults
    ``<storage>/.data`` and ``<storage>/.cache``: ``StudyPaths``), handed to each trial in its runtime.
    """
    plan = Plan.load(spec_path)
    try:
        paths = StudyPaths.resolve(storage, plan.base.name, data_dir, cache_dir)
    except UnsafePath as e:
        raise StudyError(str(e)) from None
    stage = Stages()
    try:
        with stage("pre-flight checks"):
            state = check(plan, paths, address, fresh)
        prepared = prepare(plan, paths, stage)
        with stage("tracking"):
            tracked = track(plan, paths, prepared, state)
        results = launch(plan, paths, prepared, tracked, address, stage)
        with stage("report"):
            return conclude(plan, paths, tracked, results, write_report)
    except KeyboardInterrupt:
        raise StudyInterrupted(stage.current, _saved(paths, stage.current)) from None


def _saved(paths: StudyPaths, stage: str) -> str:
    """What an interrupted study keeps, in words."""
    if stage == "report":
        return f"every trial had ended; the runs are in MLflow and the study's state in {paths.study}"
    if not paths.state.exists():
        return f"no trial had started (what was prepared stays cached in {paths.cache})"
    if not any(paths.tune.glob("*/checkpoint_*")):
        return f"no trial had saved a checkpoint yet; the study's state is kept in {paths.study}"
    return (f"the trials' checkpoints and the study's state are kept in {paths.study}, the metrics logged so far in "
            "MLflow (the study's run is marked KILLED)")  # fmt: skip


def check(plan: Plan, paths: StudyPaths, address: str | None, fresh: bool) -> dict[str, Any] | None:
    """Refuse, before anything starts, what would fail later; returns the saved state of a study to resume.

    ``--fresh`` removes the study's own directory here, after ``StudyPaths.remove_study`` checked it is nothing
    else. A study whose trials changed since it started is refused rather than resumed into mixed runs.
    """
    problems = paths.check_writable()
    if address:  # the storage seen by every node, and a node large enough for one trial (study/cluster.py)
        from study.cluster import check_cluster

        problems += check_cluster(address, paths.storage, plan.base)
    else:
        problems += _local_resource_problems(plan.base)
    uri = resolve_tracking(plan.base.tracking.tracking_uri).tracking_uri
    if (problem := connect(uri).check(timeout=TRACKING_CHECK_SECONDS)) is not None:
        problems.append(f"{problem}. Start it, or point MLFLOW_TRACKING_URI / tracking.tracking_uri elsewhere")
    if problems:
        raise StudyError("cannot start, fix these first:\n" + "\n".join(f"  - {p}" for p in problems))
    if fresh:
        try:
            paths.remove_study()
        except UnsafePath as e:
            raise StudyError(str(e)) from None
    if not paths.state.exists():
        return None
    state = json.loads(paths.state.read_text())
    if state["fingerprint"] != plan.fingerprint:
        raise StudyError(
            f"{plan.spec_path.name} changed since study {plan.base.name!r} started in {paths.study} (different "
            "trials). Resuming would mix two studies: rename the study, or pass --fresh to start it over."
        )
    return state


def prepare(plan: Plan, paths: StudyPaths, stage: Stages | None = None) -> Prepared:
    """Data (downloaded or decoded once), extractor weights, reference scores and guidance classifiers, one
    ``stage`` each."""
    import torch

    from study.preflight import preflight
    from trainables.data import subset_problems
    from trainables.guidance_classifier import ensure_noisy_classifier, needs_classifier

    stage = stage or Stages()
    with stage("data"):
        problems = preflight(plan.base, paths.data, paths.cache, fetch=True)
        if not problems:  # a gridded subset size must fit its training set in every trial, not only the base's
            problems = subset_problems([t.spec.dataset for t in plan.trials], paths.data, paths.cache)
    if problems:
        raise StudyError("cannot start, fix these first:\n" + "\n".join(f"  - {p}" for p in problems))
    with stage("IS extractor"):
        weights, facts = prepare_extractor(plan.base, paths.cache)
    with stage("reference scores"):
        references = facts | reference_scores(plan.base, weights, paths.data, paths.cache)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    classifiers: dict[str, ClassifierJob] = {}
    with stage("guidance classifiers"):
        for spec in (t.spec for t in plan.trials if needs_classifier(t.spec)):
            job = ensure_noisy_classifier(spec, paths.data, paths.cache, device)
            classifiers.setdefault(job.key, job)
    return Prepared(weights, references, list(classifiers.values()))


def track(plan: Plan, paths: StudyPaths, prepared: Prepared, state: dict[str, Any] | None) -> Tracked:
    """The study's MLflow experiment and parent run (created, or reopened on resume) and its classifier runs."""
    from trainables.guidance_classifier import log_classifier_run

    base = plan.base
    tracking = resolve_tracking(base.tracking.tracking_uri)
    experiment = tracking.experiment_prefix + (base.tracking.experiment or base.name)
    tracker = connect(tracking.tracking_uri)
    experiment_id = ensure_experiment(tracker, experiment, tracking.artifact_location)
    if state is None:
        instance = uuid.uuid4().hex[:12]
        payloads = [t.to_config() for t in plan.trials]
        parent = create_parent_run(
            tracker, experiment_id, base.name, base.description, instance, plan.spec_path, payloads, tracking.tags
        )
        if prepared.references:
            log_metrics(tracker, parent, prepared.references)
        state = {"instance": instance, "fingerprint": plan.fingerprint, "parent_run_id": parent,
                 "experiment_id": experiment_id, "tracking_uri": tracking.tracking_uri,
                 "experiment": experiment, "spec": str(plan.spec_path)}  # fmt: skip
        paths.study.mkdir(parents=True, exist_ok=True)
        atomic_write(paths.state, lambda tmp: tmp.write_text(json.dumps(state, indent=2)))
        print(f"study {base.name}: {len(plan.trials)} trial(s); MLflow experiment {experiment!r} at "
              f"{tracking.tracking_uri}")  # fmt: skip
    else:
        retry(lambda: tracker.set_status(state["parent_run_id"], "RUNNING"))
        print(f"study {base.name}: resuming {len(plan.trials)} trial(s) from {paths.tune}")
    tracked = Tracked(tracker, tracking, experiment, experiment_id, state["parent_run_id"], state["instance"])
    write_chart_view(plan, tracked)
    for job in prepared.classifiers:
        spec = next(t.spec for t in plan.trials if classifier_key(t.spec) == job.key)
        log_classifier_run(tracker, experiment_id, tracked.parent_run_id, base.name, tracked.instance, spec, job)
    return tracked


def write_chart_view(plan: Plan, tracked: Tracked) -> str | None:
    """The study's IS-vs-epoch view in MLflow (written before any trial, so it can be watched), and its link."""
    ev = plan.base.evaluation
    curves = [(ev.inception_score.extractor, ev.num_samples, eval_id) for eval_id, _, _ in ev.evaluations]
    view = chart_view(plan.base.name, tracked.instance, curves)
    try:
        save_chart_view(tracked.tracker, tracked.experiment_id, view)
    except Exception as e:  # noqa: BLE001 - a missing view costs the user clicks, not data: the study goes on
        log.warning("could not write the MLflow chart view (%s); the runs are logged as usual", e)
        return None
    return view_link(tracked.tracking.tracking_uri, tracked.experiment_id, view.view_id)


def launch(
    plan: Plan, paths: StudyPaths, prepared: Prepared, tracked: Tracked, address: str | None,
    stage: Stages | None = None,
) -> list[Any]:  # fmt: skip
    """Ray Tune runs (or resumes) the grid; an interrupted study marks its parent run KILLED and raises
    ``KeyboardInterrupt``, from Ray's start-up as from the trials. Ray is stopped in any case (``_stop_ray``)."""
    stage = stage or Stages()
    runtime = Runtime(
        tracking_uri=tracked.tracking.tracking_uri, experiment_id=tracked.experiment_id,
        parent_run_id=tracked.parent_run_id, instance=tracked.instance, study=plan.base.name,
        data_dir=str(paths.data), cache_dir=str(paths.cache), extractor_weights=prepared.extractor_weights,
        log_images=plan.base.tracking.log_images,
        classifier_weights={job.key: str(job.path.resolve()) for job in prepared.classifiers} or None,
        spool_dir=str(paths.spool),
    )  # fmt: skip
    # Ray processes already running under this process (a cluster a test or notebook started here) are not ours
    # to stop: only those started from here on are
    before = {p.pid for p in _ray_children()}
    try:
        with stage("Ray start-up"):
            _init_ray(address, plan.base)
        with stage("trials"):
            results = list(_fit(plan.base, [t.to_config() for t in plan.trials], runtime, paths.tune))
            # Ctrl-C during the trials is caught by Tune itself: it stops them, saves its state and returns. A trial
            # that has not ended is what is left of that interrupt.
            if len(results) < len(plan.trials) or any(_status(r) not in _OVER for r in results):
                raise KeyboardInterrupt
            return results
    except (KeyboardInterrupt, SystemExit) as e:
        if isinstance(e, SystemExit) and e.code != signal.SIGTERM:
            raise  # ray.init's own SIGTERM handler exits with code 15: a SIGTERM; any other exit is not ours
        with interrupts.deferred():
            try:
                retry(lambda: tracked.tracker.set_status(tracked.parent_run_id, "KILLED"), attempts=3)
            except Exception as err:  # noqa: BLE001 - a tracking outage must not hide the interrupt
                log.warning("could not mark the study's run KILLED: %s", err)
        raise KeyboardInterrupt from None
    finally:
        with interrupts.deferred():
            _stop_ray(before)
        interrupts.install()  # Tune leaves its SIGINT handler behind: the report must stop at the first Ctrl-C


_OVER = (*keys.ENDED, "errored")  # a trial in any of these states will not run again on its own


def _status(result: Any) -> str:
    """How a Tune result's trial ended (``_OVER``), or ``running``."""
    return "errored" if result.error is not None else (result.metrics or {}).get(keys.REPORT_STATUS, "running")


def _ray_children() -> list[Any]:
    """This process's Ray descendants (head processes, workers)."""
    import psutil

    return [p for p in psutil.Process().children(recursive=True) if _is_ray_process(p)]


def _stop_ray(before: set[int]) -> None:
    """``ray.shutdown()``, then an end to every Ray process this driver started that outlived it.

    An interrupt inside ``ray.init`` leaves the head processes (GCS server, raylet) running without the handle
    ``ray.shutdown`` stops them with; they would linger for a minute or more. They are this process's children (and
    theirs), listed before the shutdown because a dying raylet's workers are re-parented away. ``before``: the Ray
    processes that ran under this process before the study started Ray (a cluster started in the same process,
    as the multi-node tests do): never touched.
    """
    import psutil
    import ray

    mine = [p for p in _ray_children() if p.pid not in before]
    try:
        ray.shutdown()
    except Exception as e:  # noqa: BLE001 - a half-started Ray may fail to shut down; its processes end below
        log.debug("ray.shutdown failed: %s", e)
    alive = [p for p in mine if p.is_running()]
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(alive, timeout=10)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    if alive:
        psutil.wait_procs(alive, timeout=10)


def _is_ray_process(p: Any) -> bool:
    import psutil

    try:
        cmd = " ".join(p.cmdline())
    except psutil.Error:
        return False
    return cmd.startswith("ray::") or "/ray/" in cmd


def conclude(plan: Plan, paths: StudyPaths, tracked: Tracked, results: list[Any], write_report: bool) -> StudyOutcome:
    """How each trial ended (``study/contract/keys.py`` statuses), the parent run's status, and the report."""
    ended: dict[str, list[str]] = {s: [] for s in STATUSES}
    for result in results:
        ended.setdefault(_status(result), []).append(_result_name(result))
    finished, diverged, errored, converged = ended["finished"], ended["diverged"], ended["errored"], ended["converged"]
    interrupted = len(finished) + len(diverged) + len(errored) + len(converged) < len(plan.trials)
    status = "FAILED" if errored else "KILLED" if interrupted else "FINISHED"
    retry(lambda: tracked.tracker.set_status(tracked.parent_run_id, status))
    unlogged = replay_spools(tracked.tracker, paths.spool)  # what an outage kept back, logged now if it can be
    for trial, count in unlogged.items():
        log.warning("%s: %d write(s) could not be logged; kept in %s (replayed on the next run or report)",
                    trial, count, paths.spool / f"{trial}.jsonl")  # fmt: skip
    report = None
    if write_report:
        from analysis import write_report as _write_report

        report = _write_report(tracked.tracking.tracking_uri, tracked.experiment, paths.report, claims=plan.base.claims)
    return StudyOutcome(finished, diverged, errored, report, paths.study, converged, unlogged)


def _fit(spec: StudySpec, payloads: list[dict[str, Any]], runtime: Runtime, tune_dir: Path) -> Any:
    from ray import tune

    from study.progress import CompactProgress
    from trainables.trainable import tune_trainable

    trainable = tune.with_resources(tune_trainable, {"cpu": spec.resources.cpus, "gpu": spec.resources.gpus})
    if tune.Tuner.can_restore(str(tune_dir)):
        tuner = tune.Tuner.restore(
            str(tune_dir), trainable=trainable, resume_unfinished=True, resume_errored=True,
            param_space={"trial": tune.grid_search(payloads), "runtime": runtime_dict(runtime)},
        )  # fmt: skip
    else:
        tuner = tune.Tuner(
            trainable,
            param_space={"trial": tune.grid_search(payloads), "runtime": runtime_dict(runtime)},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=spec.resources.max_concurrent_trials,
                trial_name_creator=_trial_name,
                trial_dirname_creator=_trial_name,
            ),
            run_config=tune.RunConfig(
                name=tune_dir.name,
                storage_path=str(tune_dir.parent),
                verbose=0,
                callbacks=[CompactProgress()],
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                failure_config=tune.FailureConfig(max_failures=spec.resources.max_failures),
            ),
        )
    return tuner.fit()
