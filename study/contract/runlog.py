"""Logging into one run: a trial's child run (``TrialRun``), continued after a restore, kept through an outage.

Two guarantees live here rather than in a backend:

* **Exact resume.** A run reopened after a restore knows which (key, step) points it already holds and never logs
  them again: epochs replayed from an older checkpoint (the driver or the trial process was killed after they were
  logged but before they were checkpointed) keep their first point. On CPU the replay is bit-identical, so the kept
  values are the replay's values; wall-clock metrics keep their first measurement.
* **Outages.** A write that still fails after ``retry`` goes to the trial's spool file (JSON lines, files beside
  it) instead of failing the trial; the spool is replayed before the next write, when the run is reopened, and by
  the driver at the end of the study (``replay_spools``), which reports what is still unlogged.
"""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from study.contract.keys import (
    MLFLOW_RUN_STATUS,
    ROLE_TRIAL,
    TAG_AXES,
    TAG_DESCRIPTION,
    TAG_INSTANCE,
    TAG_PARENT,
    TAG_ROLE,
    TAG_STARTS,
    TAG_STATUS,
    TAG_STUDY,
    TAG_TRIAL,
    Status,
    axis_tag,
    parse_image_file,
)
from study.contract.tracking import MetricPoint, RunRecord, Tracker, now_ms, retry

log = logging.getLogger(__name__)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> {"training.lr": "0.002", ...}; lists become JSON (params are strings)."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= flatten(v, key + ".")
        else:
            out[key] = json.dumps(v) if isinstance(v, list | tuple) else str(v)
    return out


PARAM_MAX_CHARS = 250  # longer values (JSON lists of samplers, claims) are tags: see ``split_params``
_LITERALS = {"None": None, "True": True, "False": False}
_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")  # str() of an int or a finite float


def _value(text: str) -> Any:
    """One flattened value back: ``None``/``True``/``False``, a number, a JSON list, else the string."""
    if text in _LITERALS:
        return _LITERALS[text]
    if text[:1] in "[{" or _NUMBER.fullmatch(text):
        try:
            return json.loads(text)
        except ValueError:  # a string that looks like JSON, or a list truncated to a tag's length
            return text
    return text


def unflatten(
    params: dict[str, str], tags: dict[str, str] | None = None, sections: set[str] | None = None,
    verbatim: tuple[str, ...] = (),
) -> dict[str, Any]:  # fmt: skip
    """The nested config a trial logged with ``flatten`` and ``split_params``: its params, its free text back from
    its tag (``TEXT_PARAMS``) and its tags that hold a value too long for a param (over ``PARAM_MAX_CHARS``; only
    keys under ``sections``, the config's top-level names, when given). Under a key of ``verbatim`` the rest of the
    dotted path is one key (a mapping whose keys contain dots, such as ``grid``). Values are decoded (``_value``);
    validating the result against the spec's model gives the typed config back."""
    tags = tags or {}
    long = {k: v for k, v in tags.items() if len(v) > PARAM_MAX_CHARS and k not in TEXT_PARAMS.values()
            and (sections is None or k.split(".")[0] in sections)}  # fmt: skip
    text = {k: tags[tag] for k, tag in TEXT_PARAMS.items() if tag in tags}
    out: dict[str, Any] = {k: v for k, v in text.items() if k not in params}
    for key, value in (params | long).items():
        parts = key.split(".")
        if parts[0] in verbatim and len(parts) > 1:
            parts = [parts[0], ".".join(parts[1:])]
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[parts[-1]] = _value(value)
    return out


TEXT_PARAMS = {"description": TAG_DESCRIPTION}  # free text: a tag, never a param


MAX_TAG_CHARS = 8000  # MLflow's limit on a tag value


def split_params(flat: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(params, tags) of a flattened config: free text and values over ``PARAM_MAX_CHARS`` become tags.

    The MLflow UI prints every param as ``key=value`` above each image card and in Compare, so a long
    description or JSON list buries the sample grids. Text goes to its tag (``study.description``), a long
    value to a tag of the same key (the whole spec is also in the parent run's ``spec/`` artifacts).
    """
    params: dict[str, str] = {}
    tags: dict[str, str] = {}
    for k, v in flat.items():
        if k in TEXT_PARAMS:
            if v and v != "None":
                tags[TEXT_PARAMS[k]] = v[:MAX_TAG_CHARS]
        elif len(v) > PARAM_MAX_CHARS:
            tags[k] = v[:MAX_TAG_CHARS]
        else:
            params[k] = v
    return params, tags


class Spool:
    """Writes that failed during an outage, kept on disk (``<dir>.jsonl`` + files in ``<dir>/``) until replayed.

    Each line is one write (``metrics``, ``tags``, ``artifact`` or ``image``) with its run id, so the driver can
    replay a spool whose trial has ended.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.files = self.path.with_suffix("")

    def add(self, record: dict[str, Any], local: Path | None = None, array: np.ndarray | None = None) -> None:
        self.files.mkdir(parents=True, exist_ok=True)
        if local is not None:
            kept = self.files / f"{uuid.uuid4().hex}-{local.name}"
            shutil.copyfile(local, kept)
            record = record | {"local": str(kept), "name": local.name}
        if array is not None:
            kept = self.files / f"{uuid.uuid4().hex}.npy"
            np.save(kept, array)
            record = record | {"local": str(kept)}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def replay(
        self, tracker: Tracker, skip: Callable[[str, int], bool] = lambda key, step: False,
        written: Callable[[dict[str, Any]], None] = lambda rec: None,
    ) -> int:  # fmt: skip
        """Write every spooled record (one attempt each; metric points ``skip`` accepts are dropped), call
        ``written`` with each that went through, keep those that still fail. Returns how many remain."""
        remaining = []
        for rec in self.records():
            try:
                _write_record(tracker, rec, skip)
                written(rec)
            except Exception as e:  # noqa: BLE001 - still down: keep it for the next replay
                log.debug("spooled write still failing: %s", e)
                remaining.append(rec)
        if remaining:
            self.path.write_text("".join(json.dumps(r) + "\n" for r in remaining))
        else:
            self.path.unlink(missing_ok=True)
            shutil.rmtree(self.files, ignore_errors=True)
        return len(remaining)

    def count(self) -> int:
        return len(self.records())


def _write_record(tracker: Tracker, rec: dict[str, Any], skip: Callable[[str, int], bool]) -> None:
    run_id, kind = rec["run_id"], rec["kind"]
    if kind == "metrics":
        points = [MetricPoint(*p) for p in rec["points"] if not skip(p[0], p[2])]
        tracker.log_batch(run_id, points, {}, {})
    elif kind == "tags":
        tracker.log_batch(run_id, [], {}, rec["tags"])
    elif kind == "artifact":
        with tempfile.TemporaryDirectory() as d:
            local = Path(d) / rec["name"]
            shutil.copyfile(rec["local"], local)
            tracker.log_artifact(run_id, local, rec["folder"])
    elif kind == "image":
        tracker.log_image(run_id, np.load(rec["local"]), rec["key"], rec["step"])
    elif kind == "status":
        tracker.set_status(run_id, rec["status"])


def replay_spools(tracker: Tracker, folder: Path) -> dict[str, int]:
    """Driver side, at the end of a study: replay every trial's spool; {trial: writes still unlogged}."""
    out = {}
    for path in sorted(Path(folder).glob("*.jsonl")) if Path(folder).is_dir() else []:
        out[path.stem] = Spool(path).replay(tracker)
    return {k: v for k, v in out.items() if v}


class TrialRun:
    """The child run of one trial: continued (not forked) after a restore, each (key, step) logged once."""

    def __init__(self, tracker: Tracker, run_id: str, logged: dict[str, set[int]] | None = None,
                 spool: Spool | None = None, attempts: int = 8):  # fmt: skip
        self.tracker = tracker
        self.run_id = run_id
        self.logged: dict[str, set[int]] = logged or {}
        self.spool = spool
        self.attempts = attempts  # per write, before it is spooled (SQLite's "database is locked" needs several)

    @classmethod
    def open(
        cls,
        tracker: Tracker,
        experiment_id: str,
        parent_run_id: str,
        instance: str,
        study: str,
        trial: str,
        axes: dict[str, str],
        params: dict[str, Any],
        run_id: str | None = None,
        spool: Path | None = None,
        attempts: int = 8,
    ) -> TrialRun:
        """Continue ``run_id`` (from the checkpoint) or the run this study instance made for the trial, else
        create it. A trial that crashed before its first checkpoint thus still reuses its run."""
        if run_id is None:
            found = retry(lambda: tracker.find_runs(experiment_id, {TAG_INSTANCE: instance, TAG_TRIAL: trial}))
            run_id = found[0] if found else None
        if run_id is None:
            tags = {
                TAG_PARENT: parent_run_id, TAG_STUDY: study, TAG_ROLE: ROLE_TRIAL, TAG_TRIAL: trial,
                TAG_AXES: json.dumps(list(axes)), TAG_INSTANCE: instance, TAG_STATUS: "running", TAG_STARTS: "1",
            } | {axis_tag(k): v for k, v in axes.items()}  # fmt: skip
            short, long = split_params(flatten(params))
            new_id = retry(lambda: tracker.create_run(experiment_id, trial, long | tags))
            retry(lambda: tracker.log_batch(new_id, [], short, {}))
            run = cls(tracker, new_id, spool=Spool(spool) if spool else None, attempts=attempts)
        else:
            record = retry(lambda: tracker.run(run_id))
            starts = int(record.tags.get(TAG_STARTS, "1")) + 1
            retry(lambda: tracker.set_status(run_id, "RUNNING"))
            retry(lambda: tracker.log_batch(run_id, [], {}, {TAG_STATUS: "running", TAG_STARTS: str(starts)}))
            run = cls(tracker, run_id, logged_steps(tracker, record), Spool(spool) if spool else None, attempts)
        run.flush()
        return run

    def _write(self, write: Callable[[], None], record: dict[str, Any], **files: Any) -> bool:
        """``write`` with retries; when the backend stays down, the spool keeps it (and the trial goes on).
        True when it was written now."""
        self.flush()
        try:
            retry(write, attempts=self.attempts)
            return True
        except Exception as e:  # noqa: BLE001 - any failure of the store
            if self.spool is None:
                raise
            log.warning("tracking is failing (%s); spooling to %s", e, self.spool.path)
            self.spool.add(record | {"run_id": self.run_id}, **files)
            return False

    def flush(self) -> None:
        """Replay what an outage left in the spool (points already in the run are skipped)."""
        if self.spool is not None and self.spool.path.exists():
            self.spool.replay(self.tracker, self._has, self._written)

    def _written(self, rec: dict[str, Any]) -> None:
        if rec["kind"] == "metrics":
            self._mark([(p[0], p[2]) for p in rec["points"]])
        elif rec["kind"] == "image":
            self._mark([(f"image:{rec['key']}", rec["step"])])

    def _mark(self, points: list[tuple[str, int]]) -> None:
        for key, step in points:
            self.logged.setdefault(key, set()).add(step)

    def _has(self, key: str, step: int) -> bool:
        return step in self.logged.get(key, ())

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        ts = now_ms()
        points = [MetricPoint(k, float(v), step, ts) for k, v in metrics.items() if not self._has(k, step)]
        if points and self._write(lambda: self.tracker.log_batch(self.run_id, points, {}, {}),
                                  {"kind": "metrics", "points": [[p.key, p.value, p.step, p.timestamp]
                                                                 for p in points]}):  # fmt: skip
            self._mark([(p.key, p.step) for p in points])

    def set_tags(self, tags: dict[str, str]) -> None:
        self._write(lambda: self.tracker.log_batch(self.run_id, [], {}, tags), {"kind": "tags", "tags": tags})

    def log_image(self, image: np.ndarray, key: str, step: int) -> None:
        if not self._has(f"image:{key}", step) and self._write(
            lambda: self.tracker.log_image(self.run_id, image, key, step),
            {"kind": "image", "key": key, "step": step}, array=image,
        ):  # fmt: skip
            self._mark([(f"image:{key}", step)])

    def log_json(self, data: Any, path: str) -> None:
        """``data`` as the JSON artifact ``path`` (folder/name.json) of the run (spooled in an outage)."""
        with json_file(data, path) as (local, folder):
            self._log_file(local, folder)

    def log_arrays(self, path: str, **arrays: np.ndarray) -> None:
        """Arrays as one compressed ``.npz`` artifact at ``path`` (a folder/file.npz); re-logging replaces it."""
        folder, name = path.rsplit("/", 1)
        with tempfile.TemporaryDirectory() as d:
            buf = io.BytesIO()
            np.savez_compressed(buf, **arrays)
            (Path(d) / name).write_bytes(buf.getvalue())
            self._log_file(Path(d) / name, folder)

    def _log_file(self, local: Path, folder: str | None) -> None:
        self._write(lambda: self.tracker.log_artifact(self.run_id, local, folder),
                    {"kind": "artifact", "folder": folder}, local=local)  # fmt: skip

    def load_arrays(self, folder: str) -> dict[str, dict[str, np.ndarray]]:
        """{file name: {array name: array}} of the ``.npz`` artifacts directly under ``folder`` (empty if none)."""
        return load_run_arrays(self.tracker, self.run_id, folder)

    def unlogged(self) -> int:
        """Writes still waiting in the spool."""
        return self.spool.count() if self.spool is not None else 0

    def finish(self, status: Status) -> None:
        """Set the study status (study/contract/keys.py) and end the run with the matching run status."""
        self.set_tags({TAG_STATUS: status})
        run_status = MLFLOW_RUN_STATUS[status]
        self._write(lambda: self.tracker.set_status(self.run_id, run_status), {"kind": "status", "status": run_status})


def logged_steps(tracker: Tracker, record: RunRecord) -> dict[str, set[int]]:
    """{metric key: steps already in the run}, and images as ``image:<key>`` (from their file names)."""
    run_id = record.run_id
    out = {k: {p.step for p in retry(lambda k=k: tracker.history(run_id, k))} for k in record.metrics}
    for path in retry(lambda: tracker.list_artifacts(run_id, "images")):
        parsed = parse_image_file(path.rsplit("/", 1)[-1])
        if parsed is not None:
            out.setdefault(f"image:{parsed[0]}", set()).add(parsed[1])
    return out


def load_run_arrays(tracker: Tracker, run_id: str, folder: str) -> dict[str, dict[str, np.ndarray]]:
    """{file name: arrays} of a run's ``.npz`` artifacts under ``folder``, read once into memory."""
    files = [f for f in retry(lambda: tracker.list_artifacts(run_id, folder)) if f.endswith(".npz")]
    if not files:
        return {}
    out = {}
    with tempfile.TemporaryDirectory() as d:
        local = Path(retry(lambda: tracker.download(run_id, folder, Path(d))))
        for f in files:
            with np.load(local / Path(f).name) as z:
                out[Path(f).name] = {k: z[k] for k in z.files}
    return out


@contextmanager
def json_file(data: Any, path: str) -> Iterator[tuple[Path, str | None]]:
    """``data`` written as the JSON file ``path`` names (``folder/name.json``) in a temporary folder: (the local
    file, its artifact folder or None). Both ``log_json``s log it."""
    folder, _, name = path.rpartition("/")
    with tempfile.TemporaryDirectory() as d:
        local = Path(d) / name
        local.write_text(json.dumps(data, indent=2))
        yield local, folder or None
