"""Convergence report of a study: figures, tables, ``report.md`` and a self-contained ``index.html``.

Layout written into ``out_dir``::

    figures/is_vs_epoch.png   IS vs epoch per evaluation, 95 % bootstrap bands, plateaus with their epoch range
    figures/arms.png          (seed axis only) mean over seeds with a 95 % t-interval band
    figures/scores.png        (when logged) every other score: FID, KID, ...
    figures/loss.png          training loss per trial (log y)
    figures/generalization.png (memorization logged) IS and the memorized fraction on one time axis per trial
    figures/copies.png        (memorization images logged) per trial, its most-copied generated images above their
                              nearest training images at the onset and the latest evaluation
    generalization_window.csv (memorization logged) per trial and evaluation: IS plateau epoch and memorization
                              onset epoch with their ranges (study/statistics/onset.py)
    convergence.csv           one row per (trial, evaluation, extractor, n_samples) curve: state, plateau epoch and
                              its range, IS with its interval at the plateau and at the end, IS-infinity
    arms.csv                  (seed axis only) plateau epochs across seeds per arm
    early_stopping.csv        per trial: budget, epochs trained, the rule that stopped it, compute saved
    compute.csv               one row per (trial, evaluation): training and sampling cost
    report.md                 title, description, plateau rule, tables, image links
    index.html                the same, images embedded as data URIs (no external assets)

When ``log_to_mlflow`` is true and the study has a parent run, the directory is logged to the latest
parent run under the artifact path ``report``.
"""

from __future__ import annotations

import base64
import html
import logging
import re
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from analysis.claims import ClaimCheck, check_claims, claims_table
from analysis.convergence import arms, bootstrap_of, onset_verdicts, trial_onset_rule, verdict_of, verdicts
from analysis.figures import (
    plot_arms,
    plot_copies,
    plot_generalization,
    plot_is_vs_epoch,
    plot_loss,
    plot_sample_grids,
    plot_scores,
)  # fmt: skip
from analysis.findings import Finding, findings, findings_table, ranking_table, window_findings
from analysis.runs import StudyRuns, load_study
from analysis.tables import (
    arm_table,
    compute_table,
    convergence_table,
    differences_table,
    display_arms,
    display_compute,
    display_convergence,
    display_differences,
    display_savings,
    display_window,
    savings_table,
    to_html,
    to_markdown,
    window_table,
)
from study.contract import keys
from study.contract.experiment import run_link, view_link
from study.contract.keys import chart_view_id
from study.contract.store import connect
from study.contract.tracking import Tracker, retry
from study.statistics.plateau import PlateauRule

__all__ = ["write_report", "render_report", "ARTIFACT_PATH"]

log = logging.getLogger(__name__)

ARTIFACT_PATH = "report"
IS_FIGURE = "figures/is_vs_epoch.png"
ARMS_FIGURE = "figures/arms.png"
SCORES_FIGURE = "figures/scores.png"
LOSS_FIGURE = "figures/loss.png"
WINDOW_FIGURE = "figures/generalization.png"
COPIES_FIGURE = "figures/copies.png"
COPIES_TEXT = (
    "The most-copied generated images of each trial, at its memorization onset (the first evaluation at or after "
    "the onset epoch) and at its latest evaluation, under the score the onset rule reads: the top row holds the "
    "generated images with the smallest ratio d1/d2 of the distances to their nearest and second-nearest training "
    "image (most copy-like first; ratios below each panel, a copy is below 1/3), the bottom row each one's nearest "
    "training image (in feature space for `memorization_feature`, shown in pixels)."
)
WINDOW_TEXT = (
    "The two time scales of training (Bonnaire et al. 2025): when the samples stop improving (the IS plateau, "
    "plateau rule above) and when the model starts copying its training set (memorization onset). The memorized "
    "fraction is the share of generated images whose nearest training image is closer than a third of the second "
    "nearest (Yoon et al. 2023), its baseline the same fraction for held-out real images the model never saw. "
    "Onset epochs are the estimated crossing of the margin, with a 95 % range over draws of the curve plus its "
    "training noise; `resolved at` is the evaluation at which the rise was resolved at the rule's persistence "
    "(where the memorization stopper ends a trial). A curve without an onset is censored at its last evaluation. "
    "IS on the left axis, the memorized fraction (%) on the right."
)

UNCERTAINTY = (
    "Intervals are 95 %. The IS interval of one evaluation is a bootstrap over its generated images (each "
    "replicate resamples the images and recomputes IS with the same split procedure): it covers the IS of n images "
    "from this checkpoint (IS depends on n), not the generator's IS at any n, and not the training noise between "
    "checkpoints; the split std is shown "
    "beside it for comparison with the literature, but it is the spread of IS on n/splits images, not the "
    "uncertainty of the mean. Every evaluation of a trial starts from the same initial noise, so differences "
    "between its epochs are *paired*: the plateau rule measures them with the paired bootstrap (column `paired`; "
    "`no` means the curve had no kept per-image logits and entered by its summary statistics, SE = split std / "
    "sqrt(splits - 1), Student t on splits - 1). The plateau epoch's range is where the rule finds the plateau on 200 "
    "bootstrap draws of the curve plus the training noise estimated from it. IS∞ (Chong & Forsyth 2020) "
    "extrapolates IS to infinitely many samples (its interval: 200 bootstrap resamples of the images): compare it "
    "across sample counts. Differences between trials or epochs carry both curves' training noise; with one seed "
    "per arm that noise is estimated from the curve, not measured."
)
STATES_TEXT = (
    "State: `plateaued` (the tail's change is resolved within ±δ), `rising` (a rise beyond δ is resolved), "
    "`peaked` (a decline beyond δ after the best evaluation is resolved), `undetermined` (the interval straddles "
    "δ, or the tail is still too short; the note says what would resolve it). Intervals of the tail's change and "
    "of the plateau epoch carry the training noise τ estimated from the curve; with one seed per trial it is "
    "estimated, not measured."
)

def _summary(study: StudyRuns) -> list[str]:
    counts = Counter(study.trials["status"]) if len(study.trials) else Counter()
    status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"
    refs = [f"- reference IS ({x}, n={n}): real data {v['real']:.2f}, Gaussian noise {v['noise']:.2f}"
            for (x, n), v in sorted(study.references.items()) if {"real", "noise"} <= set(v)]  # fmt: skip
    single = "," not in study.experiment_id  # a comparison (analysis/compare.py) merges several experiments
    parent = study.parent_run_id
    if parent and single:
        parent = f"[{parent}]({run_link(study.tracking_uri, study.experiment_id, parent)})"
    runs = []
    if single and len(study.trials):
        links = [f"[{t}]({run_link(study.tracking_uri, study.experiment_id, r)})"
                 for t, r in zip(study.trials["trial"], study.trials["run_id"], strict=True)]  # fmt: skip
        view = view_link(study.tracking_uri, study.experiment_id, chart_view_id(study.study_name))
        runs = [f"- trial runs in the MLflow UI: {', '.join(links)}; [IS vs epoch of every trial]({view})"]
    return refs + [
        f"- experiment id: `{study.experiment_id}`",
        f"- parent run: {parent}" if parent else "- parent run: none",
        f"- trials: {len(study.trials)} ({status})",
        *runs,
        f"- axes: {', '.join(study.axes) or 'none'}",
        f"- generated: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')}",
    ]


# explains the compute table's ‡, written only when a row carries one (a footnote must mark something)
LOCKSTEP_NOTE = (" ‡ generated in lockstep with the trial's other evaluations (one network forward per step for all "
                 "of them, `performance.batch_evaluations`): the seconds are this evaluation's share of the common "
                 "wall time, split by the network rows it used.")  # fmt: skip


def _sections(
    study: StudyRuns, rule: PlateauRule, tables: dict[str, str], figures: list[str], found: list[Finding],
    checks: list[ClaimCheck], window: list[str] | None = None,
) -> list[tuple]:  # fmt: skip
    """(heading, paragraphs, table key, figure) in report order: one source for report.md and index.html."""
    axis = [f.sentence + f" {f.plateau}." for f in found if f.family.startswith("axis")]
    within = [f"{f.evaluation}: " + f.sentence.replace(f" under trial {f.evaluation}", "") + f" {f.plateau}."
              for f in found if f.family == "evaluations"]  # fmt: skip
    verdicts = Counter(c.verdict for c in checks)
    first = axis + ([f"Claims: {', '.join(f'{n} {v}' for v, n in sorted(verdicts.items()))} (see Claims)."]
                    if checks else [])  # fmt: skip
    out = [("Verdicts", first or ["No comparison between trials (a single trial or no IS yet); see Findings."],
            None, None)]  # fmt: skip
    if checks:
        out.append(("Claims", ["The study's claims (from its spec) against our measurements: supported when the "
                    "claimed sign is resolved (the 95 % interval excludes the alternative), contradicted when the "
                    "opposite is resolved, unresolved otherwise."], "claims", None))
    out += [
        # the comparisons between trials are the Verdicts' sentences: said once, there; Findings adds the
        # evaluations of each trial and the table of both
        ("Findings", ["Trials that differ in one axis, under the same evaluation (their sentences are the Verdicts "
         "above), then the evaluations of each trial (samplers and guidance on the same checkpoint, always paired). "
         "Intervals are 95 %, per comparison (about 1 in 20 null comparisons resolves by chance). A curve that "
         "never plateaued is censored at its last evaluation.", *within], "ranking", None),
        ("Inception Score vs epoch", [], None, IS_FIGURE),
        ("Convergence", [f"Plateau rule: {rule.describe()}.", STATES_TEXT, UNCERTAINTY], "convergence", None),
    ]
    if WINDOW_FIGURE in figures:
        copies = [COPIES_TEXT] if COPIES_FIGURE in figures else []
        out.append(("Generalization window", [WINDOW_TEXT, *(window or []), *copies], "window",
                    [WINDOW_FIGURE, *([COPIES_FIGURE] if copies else [])]))  # fmt: skip
    if ARMS_FIGURE in figures:
        out.append(("Arms (mean over seeds)", ["Trials that differ only in `training.seed`: the mean curve with a "
                    "95 % t-interval across seeds, and the plateau epochs of the seeds."], "arms", ARMS_FIGURE))
    out.append(("Paired differences", ["IS differences at the last epoch both sides were evaluated. Samplers of one "
                "trial and trials with the same evaluation seed, sample count and batch size start from the same "
                "noise: their difference gets a paired bootstrap interval (`paired = yes`). Intervals are per "
                "comparison, without a family-wise correction."], "differences", None))
    out.append(("Early stopping", ["Trials stopped by a rule before their epoch budget, and the compute that "
                "saved, estimated from each trial's measured seconds per epoch and per evaluation."], "savings", None))
    grids = [f for f in figures if f.startswith("figures/samples_")]
    if grids:
        out.append(("Samples", ["Sample grids of each trial at its first evaluation, a third of the way, its plateau "
                    "start (or two thirds) and its last evaluation (the paper's Fig. A.7-A.16): the first images of "
                    "the evaluation's fixed noise, so columns differ only by training."], None, grids))
    sizes = [f for f in figures if f.startswith("figures/sample_size_")]
    if sizes:
        out.append(("Sample size", ["IS mean and split std against the number of samples N for one checkpoint "
                    "(`python -m study sample-size`; the paper's Fig. A.1), with IS-infinity."], None, sizes))
    if SCORES_FIGURE in figures:
        out.append(("Other scores", ["Every other score the trials logged (FID, KID: lower is better)."], None,
                    SCORES_FIGURE))
    out.append(("Compute", ["Training seconds exclude evaluation; sampling seconds are wall seconds to generate the "
                "n samples of one evaluation at one epoch (mean over evaluated epochs); NFE per sample. Columns "
                "marked * are in the paper's units (Tables A.5/A.6: training time per 90 epochs, sampling time per "
                "10k images) and are extrapolated from the measured rates on the named device, not measured. "
                "† starts: how many times the trial's process started; above 1, it was restored from its checkpoint "
                "(a killed driver, or a crashed trial process that Ray Tune retried) and its replayed epochs were "
                "logged once." + (LOCKSTEP_NOTE if "‡" in tables["compute"] else "")],
                "compute", None))
    out.append(("Training loss", ["Losses of different schedules or dynamics weight the noise levels differently: "
                "they are not comparable across trials, only along one trial."], None, LOSS_FIGURE))
    return out


def _markdown(study: StudyRuns, sections: list[tuple], tables: dict[str, str]) -> str:
    parts = [f"# Study report: {study.study_name}", ""]
    if study.description:
        parts += [study.description.strip(), ""]
    parts += _summary(study) + [""]
    for heading, paragraphs, table, figure in sections:
        parts += [f"## {heading}", ""]
        for para in paragraphs:
            parts += [para, ""]
        if table:
            parts += [tables[table], ""]
        for fig in [figure] if isinstance(figure, str) else figure or []:
            parts += [f"![{heading}]({fig})", ""]
    return "\n".join(parts)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _inline(text: str) -> str:
    """The report's inline markdown as HTML: links, ``code`` and *emphasis* (a lone ``*``, as in "columns marked *",
    stays a star)."""
    out = html.escape(text, quote=False)
    link = r"\[([^\]]+)\]\((https?://[^)\s\"]+)\)"  # its URL was escaped with the text: used as it is
    out = re.sub(link, lambda m: f'<a href="{m[2]}">{m[1]}</a>', out)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"(?<![\w*])\*(?=\S)([^*]+?)(?<=\S)\*(?![\w*])", r"<em>\1</em>", out)


def _slug(heading: str) -> str:
    """``Paired differences`` -> ``paired-differences`` (section anchors; the browser test finds sections by id)."""
    return re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")


def _html(study: StudyRuns, sections: list[tuple], tables: dict[str, str], out_dir: Path) -> str:
    name = html.escape(study.study_name)
    summary = "".join(f"<li>{_inline(line[2:])}</li>" for line in _summary(study))
    desc = f"<p>{html.escape(study.description.strip())}</p>" if study.description else ""
    style = ("body{font-family:sans-serif;margin:1.5em auto;max-width:1400px;padding:0 1em;line-height:1.4}"
             ".scroll{overflow-x:auto}table{border-collapse:collapse;font-size:0.85em;margin:1em 0}"
             "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;white-space:nowrap}th{background:#eee}"
             ".wrap{white-space:normal;min-width:10em;max-width:24em}"
             "tr>.key:first-child{position:sticky;left:0;background:#fff;z-index:1}"
             "tr>th.key:first-child{background:#eee}"
             "img{max-width:100%;height:auto}p{max-width:75em}")
    body = []
    for heading, paragraphs, table, figure in sections:
        body.append(f'<h2 id="{_slug(heading)}">{html.escape(heading)}</h2>')
        body += [f"<p>{_inline(p)}</p>" for p in paragraphs]
        if table:
            body.append(f'<div class="scroll">{tables[table]}</div>')
        for fig in [figure] if isinstance(figure, str) else figure or []:
            body.append(_img(out_dir / fig, heading))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Study report: {name}</title>
<style>{style}</style></head>
<body>
<h1>Study report: {name}</h1>
{desc}
<ul>{summary}</ul>
{chr(10).join(body)}
</body></html>
"""


def _grid_epochs(epochs: list[int], plateau: int | None) -> list[int]:
    """First, a third of the way, the plateau start (or two thirds) and the last evaluated epoch."""
    if not epochs:
        return []
    third = epochs[len(epochs) // 3]
    later = plateau if plateau is not None else epochs[2 * len(epochs) // 3]
    return sorted({epochs[0], third, later, epochs[-1]})


def _sample_figures(study: StudyRuns, found: dict, out_dir: Path) -> list[str]:
    """Sample-grid figures (one per evaluation) and the sample-size study's figures, saved under figures/."""
    import matplotlib.image

    from analysis.runs import load_images, load_sample_grids

    out = []
    sc = study.scores
    for i, evaluation in enumerate(sorted(set(sc["evaluation"]))):
        grids = {}
        for trial in study.trials["trial"]:
            epochs = sorted(int(e) for e in sc[(sc["trial"] == trial) & (sc["evaluation"] == evaluation)]["epoch"])
            v = verdict_of(found, str(trial), evaluation)
            try:
                grids[str(trial)] = load_sample_grids(study, str(trial), evaluation,
                                                      _grid_epochs(epochs, v.epoch if v else None))  # fmt: skip
            except Exception as e:  # noqa: BLE001 - missing images must not stop the report
                log.warning("no sample grids of %s / %s (%s)", trial, evaluation, e)
        name = f"figures/samples_{i}.png"
        if plot_sample_grids(grids, out_dir / name, title=f"{study.study_name}: samples, {evaluation}"):
            out.append(name)
    for j, run_id in enumerate(study.sample_size_runs):
        for k, img in enumerate(load_images(study, run_id, "sample_size", lambda n: n.endswith(".png")).values()):
            name = f"figures/sample_size_{j}_{k}.png"
            matplotlib.image.imsave(out_dir / name, img)
            out.append(name)
    return out


def _ratios(study: StudyRuns, trial: str, evaluation: str, score: str, epoch: int, k: int) -> str:
    """The ``k`` smallest d1/d2 ratios of an evaluation, from its logged distances (the copies grid's order)."""
    from analysis.runs import load_evaluation_arrays

    try:
        arrays = load_evaluation_arrays(study, trial, evaluation, epoch)
    except Exception as e:  # noqa: BLE001 - a missing artifact must not stop the report
        log.warning("no distances of %s / %s at epoch %d (%s)", trial, evaluation, epoch, e)
        return ""
    nn1, nn2 = (arrays.get(keys.score_array(score, a)) for a in ("nn1", "nn2"))
    if nn1 is None or nn2 is None:
        return ""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(nn1 == 0, 0.0, nn1.astype(np.float64) / nn2)
    return "d1/d2: " + " ".join(f"{r:.2f}" for r in np.sort(ratio, kind="stable")[:k])


def _copies_figure(study: StudyRuns, onsets: dict, out_dir: Path) -> list[str]:
    """Per trial and evaluation with an onset verdict: its ``copies`` images at the onset and the latest evaluation
    (``COPIES_TEXT``), as one figure; [] when no trial logged them."""
    from analysis.runs import load_logged_images

    rows = {}
    for (trial, evaluation, _, _), o in sorted(onsets.items()):
        score = trial_onset_rule(study.specs.get(trial))[0]
        onset = o.epoch if o.state == "onset" and o.epoch is not None else None

        def chosen(logged: list[int], onset: int | None = onset) -> list[int]:
            after = [e for e in logged if onset is not None and e >= onset]
            return ([after[0]] if after else []) + logged[-1:]

        try:
            images = load_logged_images(study, trial, keys.score_image_key(score, "copies", evaluation), chosen)
        except Exception as e:  # noqa: BLE001 - missing images must not stop the report
            log.warning("no copies images of %s / %s (%s)", trial, evaluation, e)
            continue
        if not images:
            continue
        first_onset = next((e for e in sorted(images) if onset is not None and e >= onset), None)
        panels = {}
        for epoch, img in sorted(images.items()):
            what = ", ".join(w for w, e in (("onset", first_onset), ("latest", max(images))) if e == epoch)
            cell = (img.shape[0] - 1) // 2  # two rows of square images, 1-px padding
            k = (img.shape[1] - 1) // cell if cell > 0 else 0
            panels[f"epoch {epoch} ({what})"] = (img, _ratios(study, trial, evaluation, score, epoch, k))
        rows[f"{trial}\n{evaluation}, {score.removeprefix('memorization_')}"] = panels
    title = (f"{study.study_name}: most-copied generated images\n"
             "(top row) above their nearest training images (bottom row)")  # fmt: skip
    return [COPIES_FIGURE] if plot_copies(rows, out_dir / COPIES_FIGURE, title=title) else []


def write_report(
    tracking_uri: str,
    study_name: str,
    out_dir: Path,
    *,
    log_to_mlflow: bool = True,
    rule: PlateauRule | None = None,
    claims: list | None = None,
    tracker: Tracker | None = None,
) -> Path:
    """Load ``study_name`` from ``tracking_uri`` (or ``tracker``), write the report into ``out_dir``, return
    ``report.md``'s path.

    ``rule`` is the rule described in the report (each trial is judged with its own ``training.stop.plateau``);
    ``claims`` (the spec's ``claims``) adds the claims table.
    """
    study = load_study(tracking_uri, study_name, tracker=tracker)
    report = render_report(study, out_dir, rule=rule, claims=claims)
    if log_to_mlflow:
        if study.parent_run_id is None:
            log.warning("study %s has no parent run; report not logged to MLflow", study_name)
        else:
            tracker = study.tracker or connect(tracking_uri)
            retry(lambda: tracker.log_artifacts(study.parent_run_id, out_dir, ARTIFACT_PATH))
            log.info("logged report to run %s under %s/", study.parent_run_id, ARTIFACT_PATH)
    return report


def render_report(
    study: StudyRuns, out_dir: Path, *, rule: PlateauRule | None = None, claims: list | None = None
) -> Path:
    """Write the report of a study already read back (one study, or several merged by analysis/compare.py)."""
    rule = rule or PlateauRule()
    out_dir = Path(out_dir)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    study_name = study.study_name

    found, curves = verdicts(study)
    conv = convergence_table(study, found, curves)
    comp = compute_table(study)
    saved = savings_table(study, comp)
    arm = arm_table(study, found)
    diffs = differences_table(study)
    found_findings = findings(study, found)
    onset_found, fractions = onset_verdicts(study)
    checks = check_claims(study, found, claims or [], onset_found)
    ranking = ranking_table(conv, study.axes)
    findings_table(found_findings).to_csv(out_dir / "findings.csv", index=False)
    if checks:
        claims_table(checks).to_csv(out_dir / "claims.csv", index=False)
    conv.to_csv(out_dir / "convergence.csv", index=False)
    comp.to_csv(out_dir / "compute.csv", index=False)
    saved.to_csv(out_dir / "early_stopping.csv", index=False)
    diffs.to_csv(out_dir / "differences.csv", index=False)
    if not arm.empty:
        arm.to_csv(out_dir / "arms.csv", index=False)
    memorization = {t: trial_onset_rule(study.specs.get(t)) for t in {k[0] for k in onset_found}}
    window = window_table(study, found, onset_found, {t: s for t, (s, _) in memorization.items()})
    if not window.empty:
        window.to_csv(out_dir / "generalization_window.csv", index=False)

    trials = list(study.trials["trial"])
    statuses = dict(zip(study.trials["trial"], study.trials["status"], strict=True))
    figures = [IS_FIGURE, LOSS_FIGURE]
    plot_is_vs_epoch(study.scores, found, out_dir / IS_FIGURE, title=f"{study_name}: Inception Score vs epoch",
                     trials=trials, statuses=statuses, references=study.references,
                     splits={t: bootstrap_of(study.specs.get(t)).splits for t in trials})
    plot_loss(study.losses, out_dir / LOSS_FIGURE, title=f"{study_name}: training loss", trials=trials)
    if not arm.empty:
        plot_arms(study.scores, arms(study), out_dir / ARMS_FIGURE, title=f"{study_name}: arms (mean over seeds)")
        figures.append(ARMS_FIGURE)
    if plot_scores(study.metrics, out_dir / SCORES_FIGURE, title=f"{study_name}: other scores", trials=trials):
        figures.append(SCORES_FIGURE)
    if plot_generalization(study.scores, found, onset_found, fractions, out_dir / WINDOW_FIGURE,
                           title=f"{study_name}: generalization window (IS and memorization)",
                           splits={t: bootstrap_of(study.specs.get(t)).splits for t in trials}):  # fmt: skip
        figures.append(WINDOW_FIGURE)
        figures += _copies_figure(study, onset_found, out_dir)
    figures += _sample_figures(study, found, out_dir)

    tables_md = {"convergence": to_markdown(display_convergence(conv, study.axes)),
                 "compute": to_markdown(display_compute(comp, study.axes)),
                 "savings": to_markdown(display_savings(saved)), "arms": to_markdown(display_arms(arm)),
                 "differences": to_markdown(display_differences(diffs)),
                 "claims": to_markdown(claims_table(checks)), "ranking": to_markdown(ranking)}
    tables_html = {"convergence": to_html(display_convergence(conv, study.axes)),
                   "compute": to_html(display_compute(comp, study.axes)),
                   "savings": to_html(display_savings(saved)), "arms": to_html(display_arms(arm)),
                   "differences": to_html(display_differences(diffs)),
                   "claims": to_html(claims_table(checks)), "ranking": to_html(ranking)}
    if not window.empty:
        rules = sorted({r.describe() for _, r in memorization.values()})
        shown = display_window(window, study.axes)
        tables_md["window"], tables_html["window"] = to_markdown(shown), to_html(shown)
        window_text = [f"Onset rule: {'; '.join(rules)}.", *window_findings(window)]
    else:
        window_text = []
    sections = _sections(study, rule, tables_md, figures, found_findings, checks, window_text)
    report = out_dir / "report.md"
    report.write_text(_markdown(study, sections, tables_md), encoding="utf-8")
    (out_dir / "index.html").write_text(_html(study, sections, tables_html, out_dir), encoding="utf-8")
    log.info("wrote report of %s to %s", study_name, out_dir)
    return report
