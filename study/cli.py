"""``python -m study``: the command line (validate, schema, run, report, compare, sample-size)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path

from study.contract.spec import SpecError, StudySpec

log = logging.getLogger("study")

# The environment variables that choose the defaults of --data-dir and --cache-dir (README); read here only.
DATA_ENV, CACHE_ENV = "STUDY_DATA_DIR", "STUDY_CACHE_DIR"

INTERRUPTED = 130  # the shell's status for a command ended by Ctrl-C (128 + SIGINT)


class _TuneInterruptNotes(logging.Filter):
    """Drops Ray Tune's own lines about an interrupt (they name ``Tuner.restore``): the driver prints one line that
    says what was saved and the command that resumes."""

    NOTES = ("Stop signal received", "has been interrupted", "Trials did not complete")

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(note in record.getMessage() for note in self.NOTES)


def _validate(args: argparse.Namespace) -> int:
    from study.plan import Plan

    plan = Plan.load(args.spec)  # a file that is not a spec is refused before the trial library (torch) loads
    base, trials = plan.base, plan.trials

    from study.describe import describe_study
    from study.paths import StudyPaths
    from study.preflight import preflight

    print(describe_study(base, trials))
    # Missing data or weights are warnings here (the spec is valid; another machine may have the files);
    # `study run` stops with exit code 2 on the same problems.
    paths = StudyPaths.resolve("studies", base.name, args.data_dir, args.cache_dir)
    for problem in preflight(base, paths.data, paths.cache):
        print(f"warning: {problem}", file=sys.stderr)
    return 0


def _schema(args: argparse.Namespace) -> int:
    schema = StudySpec.model_json_schema()
    text = json.dumps(schema, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
        print(f"wrote {args.output}")
    else:
        print(text)
    return 0


def _resume_command(args: argparse.Namespace) -> str:
    """The command that resumes this study: the same spec, storage, directories and cluster, never ``--fresh``."""
    words = ["python", "-m", "study", "run", args.spec]
    words += ["--storage", args.storage] if args.storage != "studies" else []
    words += ["--address", args.address] if args.address else []
    for option, value, env in (("--data-dir", args.data_dir, DATA_ENV), ("--cache-dir", args.cache_dir, CACHE_ENV)):
        words += [option, value] if value and value != os.environ.get(env) else []  # given on the command line
    return shlex.join(words)


def _run(args: argparse.Namespace) -> int:
    from study.runner import StudyInterrupted, run_study

    try:
        outcome = run_study(args.spec, address=args.address, storage=args.storage, data_dir=args.data_dir,
                            cache_dir=args.cache_dir, fresh=args.fresh)  # fmt: skip
    except StudyInterrupted as e:
        print(f"\ninterrupted during {e.stage}: {e.saved}. Resume with: {_resume_command(args)}", file=sys.stderr,
              flush=True)  # fmt: skip
        return INTERRUPTED
    print()
    print(f"finished: {len(outcome.finished)}  converged (stopped early): {len(outcome.converged)}  "
          f"diverged: {len(outcome.diverged)}  errored: {len(outcome.errored)}")  # fmt: skip
    for name in outcome.diverged:
        print(f"  diverged (non-finite loss): {name}")
    for name in outcome.errored:
        print(f"  ERRORED: {name}  (its error.txt is under {outcome.study_dir / 'tune'}); run again to retry it")
    for name, count in outcome.unlogged.items():
        print(f"  NOT LOGGED: {count} tracking write(s) of {name} (tracking was down); kept in "
              f"{outcome.study_dir / 'spool' / (name + '.jsonl')}, logged when the study runs again")
    if outcome.report:
        print(f"report: {outcome.report.parent / 'index.html'}  ({outcome.report})")
    from study.contract.keys import chart_view_id

    state = json.loads((outcome.study_dir / "study.json").read_text())
    _print_ui_link(state["tracking_uri"], state["experiment_id"], chart_view_id(outcome.study_dir.name))
    return outcome.exit_code


def _print_ui_link(uri: str, experiment_id: str, view_id: str) -> None:
    """The one link to the IS-vs-epoch chart of every trial (the view ``run`` wrote), and how to serve the UI."""
    from study.contract.experiment import ui_command, view_link

    print(f"MLflow UI, IS vs epoch of every trial: {view_link(uri, experiment_id, view_id)}")
    command = ui_command(uri)
    if command:
        print(f"  (serve the UI first: {command}; README, 'The MLflow UI')")


def _resolve_study(target_arg: str, storage: str) -> tuple[str, str, str, Path, StudySpec | None]:
    """(name, tracking URI, experiment, study directory, spec or None) of a study named, given by its directory (the
    path ``run`` prints) or by its spec."""
    from study.contract.store import resolve_tracking
    from study.paths import locate_study
    from study.plan import Plan

    target = Path(target_arg)
    base = None
    if target.suffix in (".yaml", ".yml") and target.is_file():
        base = Plan.load(target).base  # read, expanded and checked as ``validate`` and ``run`` do
        name, spec_uri = base.name, base.tracking.tracking_uri
    else:
        (name, storage_dir), spec_uri = locate_study(target_arg, storage), None
        storage = str(storage_dir)
    study_dir = Path(storage).resolve() / name
    state_file = study_dir / "study.json"
    if state_file.exists():
        state = json.loads(state_file.read_text())
        uri, experiment = state["tracking_uri"], state["experiment"]
        if base is None and Path(state.get("spec", "")).is_file():
            base = Plan.load(state["spec"]).base  # the claims to check live in the study's spec
    else:
        tracking = resolve_tracking(spec_uri)
        uri, experiment = tracking.tracking_uri, tracking.experiment_prefix + name
    return name, uri, experiment, study_dir, base


def _report(args: argparse.Namespace) -> int:
    from analysis import write_report

    name, uri, experiment, study_dir, base = _resolve_study(args.study, args.storage)
    out = Path(args.output) if args.output else study_dir / "report"
    path = write_report(uri, experiment, out, claims=base.claims if base is not None else [])
    print(f"report: {path.parent / 'index.html'}  ({path})")
    view = _rewrite_chart_view(uri, experiment, name)
    if view is not None:
        _print_ui_link(uri, *view)
    return 0


def _rewrite_chart_view(uri: str, experiment: str, study: str) -> tuple[str, str] | None:
    """(experiment id, view id) of the study's chart view, written again from what its trials logged: a study run
    before views existed gets one, and one whose spec changed gets charts of the curves it has."""
    from study.contract.experiment import logged_chart_view, save_chart_view
    from study.contract.store import connect
    from study.contract.tracking import retry

    tracker = connect(uri)
    exp = retry(lambda: tracker.experiment(experiment))
    view = logged_chart_view(tracker, exp.experiment_id, study) if exp is not None else None
    if view is None or not view.charts:
        return None
    try:
        save_chart_view(tracker, exp.experiment_id, view)
    except Exception as e:  # noqa: BLE001 - the report is written; the link is a convenience
        log.warning("could not write the MLflow chart view (%s)", e)
        return None
    return exp.experiment_id, view.view_id


def _second_study_hint(target: str, storage: str) -> str:
    """Why one study cannot be compared, and how to make a second, comparable one: the same spec (so the same data,
    budget and metric) with another training seed under a new name; ``compare`` then shows the seed-to-seed spread."""
    name, _, _, study_dir, base = _resolve_study(target, storage)
    spec: Path | None = None
    if Path(target).suffix in (".yaml", ".yml") and Path(target).is_file():
        spec = Path(target)
    elif (study_dir / "study.json").is_file():
        recorded = json.loads((study_dir / "study.json").read_text()).get("spec")
        spec = Path(recorded) if recorded else None
    other = f"{name}_seed1"
    copy = spec.with_name(f"{spec.stem}_seed1{spec.suffix}") if spec is not None else Path(f"{other}.yaml")
    seed = base.training.seed + 1 if base is not None else 1
    return (f"compare needs two or more studies; only {name!r} was given. To make a second one comparable with it, "
            f"copy {spec if spec is not None else 'its spec'} to {copy}, set `name: {other}` and "
            f"`training.seed: {seed}` in the copy (same data, budget and metric; another training seed), run "
            f"`python -m study run {copy}`, then `python -m study compare {study_dir} {study_dir.parent / other}`")


def _compare(args: argparse.Namespace) -> int:
    from analysis.compare import comparison_mode, load_studies, merge_studies, output_dir
    from analysis.report import render_report

    if len(args.studies) < 2:
        raise ValueError(_second_study_hint(args.studies[0], args.storage))
    resolved = [_resolve_study(t, args.storage) for t in args.studies]
    studies = load_studies([(uri, experiment) for _, uri, experiment, _, _ in resolved])
    mode, why = comparison_mode(studies)
    print(f"comparing {', '.join(s.study_name for s in studies)}: {why}")
    claims = [c for *_, base in resolved if base is not None for c in base.claims] if mode == "is" else []
    out = Path(args.output) if args.output else output_dir(Path(args.storage).resolve(), [r[0] for r in resolved])
    path = render_report(merge_studies(studies, mode), out, claims=claims)
    print(f"report: {path.parent / 'index.html'}  ({path})")
    return 0


def _sample_size(args: argparse.Namespace) -> int:
    from study.sample_size import sample_size_study, summary_lines

    sizes = [int(n) for n in args.n.split(",") if n.strip()]
    result = sample_size_study(args.study, args.trial, args.eval, sizes, epoch=args.epoch, storage=args.storage,
                               seed=args.seed, data_dir=args.data_dir, cache_dir=args.cache_dir)  # fmt: skip
    print("\n".join(summary_lines(result)))
    return 0


def _add_directories(p: argparse.ArgumentParser) -> None:
    """``--data-dir`` and ``--cache-dir``: the only place the environment chooses them (their defaults)."""
    p.add_argument("--data-dir", default=os.environ.get(DATA_ENV) or None,
                   help=f"datasets (default: ${DATA_ENV}, else <storage>/.data)")  # fmt: skip
    p.add_argument("--cache-dir", default=os.environ.get(CACHE_ENV) or None,
                   help=f"prepared data, reference features, trained classifiers (default: ${CACHE_ENV}, else "
                   "<storage>/.cache)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m study",
        description="Compare diffusion models: a YAML spec becomes a Ray Tune grid of trials logged to MLflow, with "
        "Inception Score curves, their plateaus and a convergence report. A STUDY is the directory that run prints "
        "(studies/NAME), the study's name, or its spec file.",
        epilog="python -m study COMMAND --help describes a command's options.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="validate a spec and print its expanded trials")
    p.add_argument("spec")
    _add_directories(p)
    p.set_defaults(fn=_validate)

    p = sub.add_parser("schema", help="print the JSON Schema of study specs (for editor autocompletion)")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.set_defaults(fn=_schema)

    p = sub.add_parser("run", help="run (or resume) a study on Ray Tune, logging to MLflow")
    p.add_argument("spec")
    p.add_argument("--address", help="Ray cluster address (e.g. auto); default: a local Ray started for this run")
    p.add_argument("--storage", default="studies", help="study state directory (default: ./studies)")
    p.add_argument("--fresh", action="store_true", help="discard this study's checkpoints and start over")
    _add_directories(p)
    p.set_defaults(fn=_run)

    p = sub.add_parser("compare", help="several studies' curves and findings in one report, when comparable")
    p.add_argument("studies", nargs="+", metavar="STUDY", help="study directories, names or spec files (two or more)")
    p.add_argument("--storage", default="studies")
    p.add_argument("-o", "--output", help="report directory (default: <storage>/compare_<a>__<b>...)")
    p.set_defaults(fn=_compare)

    p = sub.add_parser("report", help="(re)write a study's convergence report from MLflow")
    p.add_argument("study", help="study directory (as run prints it), name or spec file")
    p.add_argument("--storage", default="studies", help="where study names are looked up (default: ./studies)")
    p.add_argument("-o", "--output", help="report directory (default: <storage>/<study>/report)")
    p.set_defaults(fn=_report)

    p = sub.add_parser("sample-size", help="IS (and FID) of one trial checkpoint vs the number of samples (Fig. A.1)")
    p.add_argument("study", help="study directory (as run prints it), name or spec file")
    p.add_argument("--trial", required=True,
                   help="trial name as the report prints it, e.g. 't0_schedule=linear(scale=1)'")
    p.add_argument("--epoch", type=int, help="checkpoint epoch (default: the latest; Tune keeps the last 2)")
    p.add_argument("--eval", required=True, help="unguided evaluation id of the spec, e.g. ddim-20")
    p.add_argument("--n", required=True, help="comma-separated sample counts, e.g. 100,200,500,1000")
    p.add_argument("--seed", type=int, help="initial-noise seed (default: evaluation.seed, the trial's own)")
    p.add_argument("--storage", default="studies")
    _add_directories(p)
    p.set_defaults(fn=_sample_size)

    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # keeps MLflow's DB-migration chatter off stdout
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # report reads artifacts: no bars
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("alembic", "mlflow", "ray", "urllib3", "matplotlib", "PIL", "tensorboardX"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("ray.tune.tune").addFilter(_TuneInterruptNotes())
    from study import interrupts

    interrupts.install()  # SIGTERM ends a command as Ctrl-C does
    try:
        return args.fn(args)
    except KeyboardInterrupt:  # before a study started (imports, reading the spec) or in another command
        what = f" before the study started: nothing was saved; start it with: {_resume_command(args)}" if (
            args.command == "run") else ""
        print(f"\ninterrupted{what}", file=sys.stderr, flush=True)
        return INTERRUPTED
    except SpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        from study.runner import StudyError

        if isinstance(e, StudyError | ValueError):  # IncomparableStudies is a ValueError
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise
