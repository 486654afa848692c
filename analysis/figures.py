"""Report figures, drawn on ``matplotlib.figure.Figure`` objects (Agg canvas, no pyplot state)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.convergence import arm_curve
from study.statistics.onset import FractionCurve, Onset
from study.statistics.plateau import Verdict, two_sided
from study.statistics.stats import split_std_to_se

__all__ = ["plot_is_vs_epoch", "plot_loss", "plot_arms", "plot_scores", "plot_generalization", "trial_palette"]

log = logging.getLogger(__name__)

PlateauMap = Mapping[tuple[str, str, str, int], Verdict]


def trial_palette(trials: list[str]) -> dict[str, tuple[float, float, float]]:
    """One stable colour per trial, shared by all figures."""
    colours = sns.color_palette("tab10" if len(trials) <= 10 else "husl", max(len(trials), 1))
    return {t: colours[i] for i, t in enumerate(trials)}


def _finite(df: pd.DataFrame, col: str) -> pd.DataFrame:
    return df[np.isfinite(df[col].to_numpy(dtype=float))]


def _empty(path: Path, title: str, message: str) -> Path:
    fig = Figure(figsize=(6, 3))
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    fig.savefig(path, dpi=110)
    return path


def plot_is_vs_epoch(
    scores: pd.DataFrame,
    plateaus: PlateauMap,
    path: Path,
    *,
    title: str,
    trials: list[str],
    statuses: Mapping[str, str] | None = None,
    references: Mapping[tuple[str, int], Mapping[str, float]] | None = None,
    splits: Mapping[str, int] | None = None,
) -> Path:
    """IS vs epoch: one panel per evaluation (columns) and per (extractor, n) (rows).

    One line per trial with its 95 % bootstrap interval as a band (where logged; else +-1.96 SE from the split
    std); the plateau is a star in the trial's colour with a horizontal bar over the plateau epoch's 95 % range,
    and the legend names each curve's state. ``references[(extractor, n)]`` draws the IS of real data (dashed) and
    of Gaussian noise (dotted) at the same n, each labelled with its value.
    """
    data = _finite(scores, "is_mean")
    if data.empty:
        return _empty(path, title, "no Inception Score logged yet")
    palette = trial_palette(trials)
    evaluations = sorted(data["evaluation"].unique())
    combos = sorted({(str(x), int(n)) for x, n in zip(data["extractor"], data["n_samples"], strict=True)})
    # Panels wrap at 3 per row (a sampler with its guidance variants fills one row when ids sort together).
    panels = [(extractor, n, evaluation) for extractor, n in combos for evaluation in evaluations]
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
        fig, axs = _panel_grid(len(panels), min(3, len(evaluations)))
        xlim = (0, float(data["epoch"].max()) * 1.03 + 0.5)
        for ax, (extractor, n, evaluation) in zip(axs, panels, strict=False):
            panel = data[(data["extractor"] == extractor) & (data["n_samples"] == n)
                         & (data["evaluation"] == evaluation)]
            ax.set_xlim(*xlim)
            labels: list[tuple[float, float, str, str]] = []  # (epoch, IS, state, colour) at each curve's end
            for trial, g in panel.groupby("trial", sort=True):
                colour = palette[str(trial)]
                sns.lineplot(x=g["epoch"], y=g["is_mean"], color=colour, marker="o", markersize=4,
                             ax=ax, errorbar=None)
                low, high = _band(g, (splits or {}).get(str(trial), 10))
                ax.fill_between(g["epoch"], low, high, color=colour, alpha=0.18, linewidth=0)
                p = plateaus.get((str(trial), evaluation, extractor, n))
                if p is not None and p.epoch is not None:
                    if p.epoch_low is not None and p.epoch_high is not None:
                        ax.hlines(p.value, p.epoch_low, p.epoch_high, color=colour, linewidth=2.5, alpha=0.8)
                    ax.scatter([p.epoch], [p.value], marker="*", s=200, color=colour,
                               edgecolors="black", linewidths=0.8, zorder=5)
                if p is not None:
                    labels.append((float(g["epoch"].iloc[-1]), float(g["is_mean"].iloc[-1]), p.state, colour))
            _label_ends(ax, labels)
            for source, style in (("real", "--"), ("noise", ":")):
                value = (references or {}).get((extractor, n), {}).get(source)
                if value is not None:
                    ax.axhline(value, color="grey", linestyle=style, linewidth=1)
                    ax.annotate(f"{source} {value:.2f}", (0.01, value), xycoords=("axes fraction", "data"),
                                fontsize=8, color="dimgrey", va="bottom")
            ax.set_title(f"{evaluation}" if len(combos) == 1 else f"{evaluation} ({extractor}, n={n})")
            ax.set_xlabel("epoch")
            ax.set_ylabel(f"Inception Score ({extractor}, n={n})")
            if panel.empty:  # this evaluation was not scored with this (extractor, n)
                ax.set_visible(False)
        statuses = statuses or {}
        handles = [
            Line2D([], [], color=palette[t], marker="o", markersize=4,
                   label=t if statuses.get(t, "finished") == "finished" else f"{t} ({statuses[t]})")
            for t in trials if t in set(data["trial"])
        ]
        handles.append(Line2D([], [], color="black", linestyle="-", linewidth=2.5, marker="*", markersize=11,
                              markerfacecolor="white", label="plateau start, bar: 95% range"))
        if references:
            handles.append(Line2D([], [], color="grey", linestyle="--", label="real data (same n)"))
            handles.append(Line2D([], [], color="grey", linestyle=":", label="Gaussian noise (same n)"))
        # below the panels, in columns: long trial names would otherwise take a third of the figure's width
        fig.legend(handles=handles, loc="outside lower center", title="trial", fontsize="small",
                   ncols=min(3, len(handles)))
        fig.suptitle(title)
        fig.savefig(path, dpi=110)
    log.info("wrote %s", path)
    return path


def spread(values: Sequence[float], gap: float) -> list[float]:
    """Label positions as close to ``values`` as possible with neighbours at least ``gap`` apart, in the input
    order: sorted, pushed up past each predecessor, then the whole stack shifted down by its mean displacement so
    the labels stay centred on their curves."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    placed: list[float] = []
    for i in order:
        placed.append(values[i] if not placed else max(values[i], placed[-1] + gap))
    shift = sum(p - values[i] for p, i in zip(placed, order, strict=True)) / max(len(placed), 1)
    out = [0.0] * len(values)
    for p, i in zip(placed, order, strict=True):
        out[i] = p - shift
    return out


def _label_ends(ax: Axes, labels: list[tuple[float, float, str, str]]) -> None:
    """Each curve's state written at its last point, spread vertically so that no two labels overlap (two curves
    ending at nearly the same IS would otherwise print their states on top of each other)."""
    if not labels:
        return
    (left, right), (low, high) = ax.get_xlim(), ax.get_ylim()
    ys = spread([y for _, y, _, _ in labels], gap=0.07 * (high - low))
    for (x, y, state, colour), y_text in zip(labels, ys, strict=True):
        ax.annotate(state, (x, y), xytext=(x + 0.01 * (right - left), y_text), textcoords="data", fontsize=8,
                    color=colour, va="center", ha="left", annotation_clip=False,
                    arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.5} if abs(y_text - y) > 1e-9 else None)


def _panel_grid(panels: int, ncols: int) -> tuple[Figure, np.ndarray]:
    """A figure of ``panels`` axes wrapped at ``ncols`` per row (unused cells hidden), sized for reading."""
    nrows = -(-panels // ncols)
    fig = Figure(figsize=(4.8 * ncols + 0.5, 3.8 * nrows + 0.6), layout="constrained")
    axs = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axs[panels:]:
        ax.set_visible(False)
    return fig, axs


def _band(g: pd.DataFrame, splits: int) -> tuple[np.ndarray, np.ndarray]:
    """The 95 % interval of each evaluation: the bootstrap CI where logged, else +-t SE from the split std (the
    trial's own number of splits; Student t on S - 1 degrees of freedom)."""
    mean = g["is_mean"].to_numpy(dtype=float)
    lo, hi = g["is_ci_low"].to_numpy(dtype=float), g["is_ci_high"].to_numpy(dtype=float)
    se = np.array([split_std_to_se(s, splits) for s in g["is_std"].to_numpy(dtype=float)])
    se = np.where(np.isfinite(se), se, 0.0)
    q = two_sided(0.95, splits - 1)
    return np.where(np.isfinite(lo), lo, mean - q * se), np.where(np.isfinite(hi), hi, mean + q * se)


IS_COLOUR, MEM_COLOUR = "tab:blue", "tab:red"


def plot_generalization(
    scores: pd.DataFrame,
    plateaus: PlateauMap,
    onsets: Mapping[tuple[str, str, str, int], Onset],
    fractions: Mapping[tuple[str, str, str, int], FractionCurve],
    path: Path,
    *,
    title: str,
    splits: Mapping[str, int] | None = None,
) -> Path | None:
    """IS and the memorized fraction on one time axis, one panel per (trial, evaluation) that logged a memorization
    score: IS (left axis) with its 95 % band and the plateau start with its range (blue span); the memorized
    fraction in % (right axis) with +-1.96 SE, its held-out level (dashed) and held-out + delta (dotted), and the
    memorization onset with its range (red span). None when no trial logged a memorization score."""
    keys = sorted(onsets)
    if not keys:
        return None
    data = _finite(scores, "is_mean")
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
        fig, axs = _panel_grid(len(keys), min(3, len(keys)))
        for ax, key in zip(axs, keys, strict=False):
            trial, evaluation, _, _ = key
            o, c = onsets[key], fractions[key]
            g = data[(data["trial"] == trial) & (data["evaluation"] == evaluation)].sort_values("epoch")
            g = g[g["n_samples"] == g["n_samples"].max()] if len(g) else g
            if len(g):
                ax.plot(g["epoch"], g["is_mean"], color=IS_COLOUR, marker="o", markersize=3)
                low, high = _band(g, (splits or {}).get(trial, 10))
                ax.fill_between(g["epoch"], low, high, color=IS_COLOUR, alpha=0.15, linewidth=0)
            p = next((v for k, v in plateaus.items() if (k[0], k[1]) == (trial, evaluation)), None)
            if p is not None and p.epoch is not None:
                ax.axvline(p.epoch, color=IS_COLOUR, linestyle="-", linewidth=1.2)
                if p.epoch_low is not None and p.epoch_high is not None:
                    ax.axvspan(p.epoch_low, p.epoch_high, color=IS_COLOUR, alpha=0.1, linewidth=0)
            ax.set_xlabel("epoch")
            ax.set_ylabel("Inception Score", color=IS_COLOUR)
            twin = ax.twinx()
            twin.grid(False)
            pct = 100 * c.estimates
            twin.plot(c.epochs, pct, color=MEM_COLOUR, marker="s", markersize=3)
            twin.fill_between(c.epochs, pct - 196 * c.ses, pct + 196 * c.ses, color=MEM_COLOUR, alpha=0.15,
                              linewidth=0)  # fmt: skip
            if np.isfinite(c.baseline):
                twin.axhline(100 * c.baseline, color=MEM_COLOUR, linestyle="--", linewidth=1)
                twin.axhline(100 * (c.baseline + o.margin), color=MEM_COLOUR, linestyle=":", linewidth=1)
            if o.epoch is not None:
                twin.axvline(o.epoch, color=MEM_COLOUR, linestyle="-", linewidth=1.2)
                if o.epoch_low is not None and o.epoch_high is not None:
                    twin.axvspan(o.epoch_low, o.epoch_high, color=MEM_COLOUR, alpha=0.1, linewidth=0)
            twin.set_ylim(bottom=0)
            twin.set_ylabel("memorized fraction (%)", color=MEM_COLOUR)
            ax.set_title(f"{trial}\n{evaluation}: IS {p.state if p else 'n/a'}, memorization {o.state}", fontsize=9)
        handles = [
            Line2D([], [], color=IS_COLOUR, marker="o", markersize=3, label="IS, 95% band"),
            Line2D([], [], color=IS_COLOUR, linewidth=6, alpha=0.3, label="IS plateau start, 95% range"),
            Line2D([], [], color=MEM_COLOUR, marker="s", markersize=3, label="memorized fraction, 95% band"),
            Line2D([], [], color=MEM_COLOUR, linestyle="--", label="held-out level"),
            Line2D([], [], color=MEM_COLOUR, linestyle=":", label="held-out level + margin"),
            Line2D([], [], color=MEM_COLOUR, linewidth=6, alpha=0.3, label="memorization onset, 95% range"),
        ]
        fig.legend(handles=handles, loc="outside right center", fontsize="small")
        fig.suptitle(title)
        fig.savefig(path, dpi=110)
    log.info("wrote %s", path)
    return path


def plot_arms(scores: pd.DataFrame, arms: Mapping[str, list[str]], path: Path, *, title: str) -> Path:
    """Arms (trials differing only in their seed): the mean curve over seeds with a 95 % t-interval band."""
    data = _finite(scores, "is_mean")
    if data.empty:
        return _empty(path, title, "no Inception Score logged yet")
    labels = list(arms)
    palette = trial_palette(labels)
    panels = sorted({(str(x), int(n), str(e)) for x, n, e in
                     zip(data["extractor"], data["n_samples"], data["evaluation"], strict=True)})  # fmt: skip
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
        fig, axs = _panel_grid(len(panels), min(3, len(panels)))
        for ax, (extractor, n, evaluation) in zip(axs, panels, strict=False):
            panel = data[(data["extractor"] == extractor) & (data["n_samples"] == n)
                         & (data["evaluation"] == evaluation)]
            for label, trials in arms.items():
                c = arm_curve(panel, trials)
                if c.epochs.size == 0:
                    continue
                ax.plot(c.epochs, c.mean, color=palette[label], marker="o", markersize=4)
                ok = np.isfinite(c.low)
                ax.fill_between(c.epochs[ok], c.low[ok], c.high[ok], color=palette[label], alpha=0.2, linewidth=0)
            ax.set_title(evaluation)
            ax.set_xlabel("epoch")
            ax.set_ylabel(f"IS, mean over seeds ({extractor}, n={n})")
        handles = [Line2D([], [], color=palette[a], marker="o", markersize=4, label=f"{a} ({len(t)} seeds)")
                   for a, t in arms.items()]  # fmt: skip
        fig.legend(handles=handles, loc="outside right center", title="arm", fontsize="small")
        fig.suptitle(title)
        fig.savefig(path, dpi=110)
    return path


def plot_scores(metrics: pd.DataFrame, path: Path, *, title: str, trials: list[str]) -> Path | None:
    """Every other logged score (FID, KID, ...) vs epoch: a panel per (score, statistic shown, evaluation)."""
    other = metrics[(metrics["score"] != "is") & metrics["stat"].isin(["value", "mean"])]
    other = other[np.isfinite(other["value"].to_numpy(dtype=float))]
    if other.empty:
        return None
    palette = trial_palette(trials)
    panels = sorted({(str(s), str(x), int(n), str(e)) for s, x, n, e in
                     zip(other["score"], other["extractor"], other["n_samples"], other["evaluation"], strict=True)})
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
        fig, axs = _panel_grid(len(panels), min(3, len(panels)))
        for ax, (score, extractor, n, evaluation) in zip(axs, panels, strict=False):
            panel = other[(other["score"] == score) & (other["extractor"] == extractor)
                          & (other["n_samples"] == n) & (other["evaluation"] == evaluation)]
            for trial, g in panel.groupby("trial", sort=True):
                g = g.sort_values("epoch")
                ax.plot(g["epoch"], g["value"], color=palette.get(str(trial)), marker="o", markersize=4)
            ax.set_title(f"{score.upper()} {evaluation}")
            ax.set_xlabel("epoch")
            ax.set_ylabel(f"{score.upper()} ({extractor}, n={n}; lower is better)")
        handles = [Line2D([], [], color=palette[t], marker="o", markersize=4, label=t)
                   for t in trials if t in set(other["trial"])]  # fmt: skip
        fig.legend(handles=handles, loc="outside right center", title="trial", fontsize="small")
        fig.suptitle(title)
        fig.savefig(path, dpi=110)
    return path


def plot_loss(losses: pd.DataFrame, path: Path, *, title: str, trials: list[str]) -> Path:
    """Training loss (epoch mean) per trial on a log y axis; non-finite / non-positive values dropped."""
    data = _finite(losses, "loss")
    data = data[data["loss"] > 0]
    if data.empty:
        return _empty(path, title, "no training loss logged yet")
    palette = trial_palette(trials)
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
        fig = Figure(figsize=(8, 4.5), layout="constrained")
        ax = fig.add_subplot()
        sns.lineplot(data=data, x="epoch", y="loss", hue="trial", palette=palette,
                     hue_order=[t for t in trials if t in set(data["trial"])], ax=ax, errorbar=None,
                     marker="o", markersize=3, markeredgewidth=0)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("train loss (epoch mean, log scale)")
        ax.set_title(title)
        legend = ax.get_legend()
        if legend is not None:
            legend.set_title("trial")
        fig.savefig(path, dpi=110)
    log.info("wrote %s", path)
    return path


def plot_sample_grids(grids: Mapping[str, Mapping[int, np.ndarray]], path: Path, *, title: str) -> Path | None:
    """Sample grids side by side (the paper's Fig. A.7-A.16): a row per trial, its chosen epochs left to right."""
    rows = [(t, g) for t, g in grids.items() if g]
    if not rows:
        return None
    ncols = max(len(g) for _, g in rows)
    fig = Figure(figsize=(2.4 * ncols + 1.5, 2.5 * len(rows) + 0.5), layout="constrained")
    axs = fig.subplots(len(rows), ncols, squeeze=False)
    for r, (trial, g) in enumerate(rows):
        for c in range(ncols):
            ax = axs[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(g):
                ax.set_axis_off()
                continue
            epoch = sorted(g)[c]
            ax.imshow(g[epoch], cmap="gray" if g[epoch].ndim == 2 else None)
            ax.set_title(f"epoch {epoch}", fontsize=9)
            if c == 0:
                ax.set_ylabel(trial, fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    return path


def plot_copies(rows: Mapping[str, Mapping[str, tuple[np.ndarray, str]]], path: Path, *, title: str) -> Path | None:
    """Memorization's most-copied images (trainables/scores.py ``copies_grid``): a row per trial and evaluation
    (``rows``' keys), its chosen evaluations left to right ({column title: (image, caption below it)})."""
    rows = {r: g for r, g in rows.items() if g}
    if not rows:
        return None
    ncols = max(len(g) for g in rows.values())
    width = max(img.shape[1] / max(img.shape[0], 1) for g in rows.values() for img, _ in g.values())
    fig = Figure(figsize=(min(1.2 * width + 0.5, 9) * ncols + 1.5, 2.2 * len(rows) + 0.6), layout="constrained")
    axs = fig.subplots(len(rows), ncols, squeeze=False)
    for r, (label, g) in enumerate(rows.items()):
        for c in range(ncols):
            ax = axs[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(g):
                ax.set_axis_off()
                continue
            heading, (img, caption) = list(g.items())[c]
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
            ax.set_title(heading, fontsize=9)
            ax.set_xlabel(caption, fontsize=7)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    return path
