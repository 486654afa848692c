"""``python -m study run``: a spec becomes a Ray Tune grid of trials logging into one MLflow experiment.

Study state lives in ``<storage>/<study name>/``: ``study.json`` (instance id, spec fingerprint, MLflow
ids), ``tune/`` (Ray Tune's experiment directory with trial checkpoints) and ``report/``. Running the same
spec again resumes an unfinished study (Tuner.restore) into the same MLflow runs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from study import keys
from study.keys import STATUSES
from study.spec import StudySpec, Trial, load_study, spec_fingerprint
from study.tracking import create_parent_run, ensure_experiment, resolve_tracking
from trainables.tracking import retry
from trainables.trainable import Runtime, runtime_dict

log = logging.getLogger(__name__)

# Quiet, deterministic Ray Tune defaults for a CLI (each can still be overridden from the environment).
RAY_ENV = {
    "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_DEDUP_LOGS": "0",
}


class StudyError(Exception):
    """A study that cannot start or continue; the message says what to do."""


@dataclass(frozen=True)
class StudyOutcome:
    """Trial names by how they ended (study/keys.py ``Status``); ``converged`` trials stopped early."""

    finished: list[str]
    diverged: list[str]
    errored: list[str]
    report: Path | None
    study_dir: Path
    converged: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.errored else 0


def _trial_name(trial: Any) -> str:
    return trial.config["trial"]["name"]


def _trial_payload(t: Trial) -> dict[str, Any]:
    return {"name": t.name, "index": t.index, "axes": t.axes, "spec": t.spec.model_dump(mode="json")}


def prepare_extractor(spec: StudySpec, cache_dir: Path) -> tuple[str | None, dict[str, float]]:
    """Weights path of the IS feature extractor (its declaration trains, downloads or checks it) and facts to log."""
    from trainables.metrics import UnsafeFile, WeightsUnavailable, extractor_decl

    try:
        return extractor_decl(spec.evaluation.inception_score.extractor).prepare(spec, cache_dir)
    except (WeightsUnavailable, UnsafeFile, ValueError) as e:
        raise StudyError(str(e)) from None


def reference_scores(spec: StudySpec, weights: str | None, data_dir: Path) -> dict[str, float]:
    """IS of real training images and of Gaussian noise at the study's sample count: the curve's bounds."""
    import torch

    from trainables.data import load_dataset
    from trainables.metrics import extractor_decl, inception_score, to_uint8

    ev, isc = spec.evaluation, spec.evaluation.inception_score
    if not extractor_decl(isc.extractor).fast_on_cpu and not torch.cuda.is_available():
        return {}  # Inception on CPU takes minutes for a few thousand images; skip the references there
    data = load_dataset(spec.dataset, data_dir)
    n = min(ev.num_samples, len(data.train))
    real = torch.stack([data.train[i][0] for i in range(n)])
    noise = torch.randn(real.shape, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    out = {}
    for name, x in (("real", real), ("noise", noise)):
        score = inception_score(to_uint8(x), isc.extractor, weights, isc.splits, isc.shuffle)
        out[keys.reference_key("is", isc.extractor, n, name, "mean")] = score.mean
        out[keys.reference_key("is", isc.extractor, n, name, "std")] = score.std
    return out


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
    fresh: bool = False,
    write_report: bool = True,
) -> StudyOutcome:
    """Run (or resume) a study. Raises ``SpecError`` for a bad spec and ``StudyError`` when it cannot start.

    Everything derived (the driver's classifiers, and the prepared image folders and FID/KID reference features
    that preflight and the trials write, ``trainables.data.prepared_dir``) goes to one cache, ``STUDY_CACHE_DIR``
    or ``<storage>/.cache`` (README): it is set for the run's duration and passed to the trials.
    """
    previous = os.environ.get("STUDY_CACHE_DIR")
    os.environ["STUDY_CACHE_DIR"] = str(Path(previous or Path(storage) / ".cache").resolve())
    try:
        return _run_study(Path(spec_path), address, Path(storage), fresh, write_report)
    finally:
        if previous is None:
            os.environ.pop("STUDY_CACHE_DIR", None)
        else:
            os.environ["STUDY_CACHE_DIR"] = previous


def _run_study(spec_path: Path, address: str | None, storage: Path, fresh: bool, write_report: bool) -> StudyOutcome:
    """``run_study`` with the study's cache directory in the environment."""
    spec_path = Path(spec_path).resolve()
    base, trials = load_study(spec_path)
    study_dir = (Path(storage) / base.name).resolve()
    tune_dir = study_dir / "tune"
    state_file = study_dir / "study.json"
    fingerprint = spec_fingerprint(trials)
    tracking = resolve_tracking(base.tracking.tracking_uri)
    experiment = tracking.experiment_prefix + (base.tracking.experiment or base.name)
    client = MlflowClient(tracking.tracking_uri)

    if fresh and study_dir.exists():
        shutil.rmtree(study_dir)
    state = json.loads(state_file.read_text()) if state_file.exists() else None
    if state is not None and state["fingerprint"] != fingerprint:
        raise StudyError(
            f"{spec_path.name} changed since study {base.name!r} started in {study_dir} (different trials). "
            "Resuming would mix two studies: rename the study, or pass --fresh to start it over."
        )
    cache_dir = Path(os.environ.get("STUDY_CACHE_DIR", study_dir.parent / ".cache")).resolve()
    data_dir = Path(os.environ.get("STUDY_DATA_DIR", study_dir.parent / ".data")).resolve()
    from study.preflight import preflight

    problems = preflight(base, data_dir, fetch=True)  # downloads/prepares once, before Ray starts
    if problems:
        raise StudyError("cannot start, fix these first:\n" + "\n".join(f"  - {p}" for p in problems))
    study_dir.mkdir(parents=True, exist_ok=True)
    weights, extractor_facts = prepare_extractor(base, cache_dir)

    experiment_id = ensure_experiment(client, experiment, tracking.artifact_location)
    payloads = [_trial_payload(t) for t in trials]
    if state is None:
        instance = uuid.uuid4().hex[:12]
        parent = create_parent_run(
            client, experiment_id, base.name, base.description, instance, spec_path, payloads, tracking.tags
        )
        refs = reference_scores(base, weights, data_dir) | extractor_facts
        if refs:
            retry(lambda: client.log_batch(parent, metrics=_metrics(refs)))
        state = {"instance": instance, "fingerprint": fingerprint, "parent_run_id": parent,
                 "experiment_id": experiment_id, "tracking_uri": tracking.tracking_uri,
                 "experiment": experiment, "spec": str(spec_path)}  # fmt: skip
        state_file.write_text(json.dumps(state, indent=2))
        print(f"study {base.name}: {len(trials)} trial(s); MLflow experiment {experiment!r} at {tracking.tracking_uri}")
    else:
        retry(lambda: client.update_run(state["parent_run_id"], status="RUNNING"))
        print(f"study {base.name}: resuming {len(trials)} trial(s) from {tune_dir}")

    from trainables.guidance_classifier import prepare_classifiers

    # Noisy classifiers for guidance: trained (or found in the cache) once per (dataset, dynamics), before Ray starts.
    classifiers = prepare_classifiers(
        [t.spec for t in trials], data_dir, cache_dir, client, experiment_id, state["parent_run_id"], base.name,
        state["instance"],
    )  # fmt: skip
    runtime = Runtime(
        tracking_uri=tracking.tracking_uri, experiment_id=experiment_id, parent_run_id=state["parent_run_id"],
        instance=state["instance"], study=base.name, data_dir=str(data_dir), extractor_weights=weights,
        log_images=base.tracking.log_images, classifier_weights=classifiers or None, cache_dir=str(cache_dir),
    )  # fmt: skip
    _init_ray(address, base)
    try:
        results = _fit(base, payloads, runtime, tune_dir)
    except KeyboardInterrupt:
        retry(lambda: client.set_terminated(state["parent_run_id"], status="KILLED"))
        raise
    finally:
        import ray

        ray.shutdown()

    ended: dict[str, list[str]] = {s: [] for s in STATUSES}
    for result in results:
        name = result.config["trial"]["name"]
        status = "errored" if result.error is not None else (result.metrics or {}).get("status", "running")
        ended.setdefault(status, []).append(name)
    finished, diverged, errored, converged = ended["finished"], ended["diverged"], ended["errored"], ended["converged"]
    interrupted = len(finished) + len(diverged) + len(errored) + len(converged) < len(trials)
    status = "FAILED" if errored else "KILLED" if interrupted else "FINISHED"
    retry(lambda: client.set_terminated(state["parent_run_id"], status=status))

    report = None
    if write_report:
        from analysis import write_report as _write_report

        report = _write_report(tracking.tracking_uri, experiment, study_dir / "report", claims=base.claims)
    return StudyOutcome(finished, diverged, errored, report, study_dir, converged)


def _metrics(values: dict[str, float]) -> list:
    import time

    from mlflow.entities import Metric

    ts = int(time.time() * 1000)
    return [Metric(k, float(v), ts, 0) for k, v in values.items()]


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
