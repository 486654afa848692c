"""Calibration of the plateau rule by simulation (shared/STATISTICS.md section 3); the rates go into the rule's
docstring (analysis/plateau.py). Run with ``-s`` to see them.

Two noise models (tests/plateau_sim.py): measurement noise only (the paired bootstrap's model: what the rule's
covariance describes), and the same plus checkpoint-to-checkpoint fluctuation ("jitter", 1 and 2 times the
measurement SE of a paired difference), which the rule must estimate from the curve itself."""

from __future__ import annotations

import numpy as np
import pytest
from plateau_sim import EPOCHS, cells

from analysis.plateau import PlateauRule

N = 4000  # curves per cell: a 5 % rate is measured to +-0.35 % (one standard error)
RULE = PlateauRule()
JITTERS = (0.0, 1.0, 2.0)


def _run(shape: str, sizes: tuple[float, ...], taus: tuple[float, ...] = (10.0,), jitter: float = 0.0) -> list[tuple]:
    return [(cell, *cell.simulate(N, RULE, seed=i)[:2]) for i, cell in enumerate(cells(shape, sizes, taus, jitter))]


@pytest.mark.parametrize("jitter", JITTERS)
def test_false_plateaus_on_curves_still_rising(jitter: float) -> None:
    """At most 5 % false plateaus where the true rise over the last quarter exceeds 3 SE of a paired difference
    (measurement noise); at most 7 % when the rule must also estimate checkpoint jitter (measured: <= 5.9 %)."""
    rows = _run("linear", (3.25, 5.0, 10.0), jitter=jitter) + _run("concave", (3.25, 5.0, 10.0), jitter=jitter)
    rates = [(c, float(np.mean(~np.isnan(ep)))) for c, ep, _ in rows]
    worst = max(rates, key=lambda r: r[1])
    print(f"\njitter {jitter:g}: false plateau rate worst {worst[1]:.2%} (K={worst[0].k}, {worst[0].shape}, "
          f"rise {worst[0].size:g} SE_d), overall {np.mean([r for _, r in rates]):.2%}")
    assert worst[1] <= (0.05 if jitter == 0 else 0.07)


@pytest.mark.parametrize("jitter", JITTERS)
def test_detection_on_saturating_curves_inside_the_window(jitter: float) -> None:
    """>= 90 % detection, and the plateau epoch inside [flattening - 1 interval, flattening + E/4 + 1 interval],
    flattening = where the remaining rise falls to the margin (3 SE_d). With only 8 evaluations the slow curves
    (time constant E/7) land inside the window a little less often: >= 85 % is asserted there."""
    rows = _run("saturating", (15.0, 30.0), (8.0, 15.0), jitter=jitter)
    detect, inside = [], {}
    for cell, ep, _ in rows:
        step, flat = EPOCHS / cell.k, cell.flattening_epoch(RULE.margin_se)
        detect.append(float(np.mean(~np.isnan(ep))))
        inside.setdefault(cell.k, []).append(float(np.mean((ep >= flat - step) & (ep <= flat + EPOCHS / 4 + step))))
    print(f"\njitter {jitter:g}: saturating detection min {min(detect):.1%} mean {np.mean(detect):.1%}; inside the "
          "window min " + ", ".join(f"{min(v):.1%} (K={k})" for k, v in sorted(inside.items())))
    assert min(detect) >= 0.90
    if jitter == 0:
        assert all(min(v) >= (0.90 if k >= 12 else 0.85) for k, v in inside.items())


@pytest.mark.parametrize("jitter", JITTERS)
def test_flat_curves_plateau_and_never_peak(jitter: float) -> None:
    rows = _run("flat", (0.0,), jitter=jitter)
    found = min(float(np.mean(~np.isnan(ep))) for _, ep, _ in rows)
    false_peak = max(float(np.mean(p)) for _, _, p in rows)
    print(f"\njitter {jitter:g}: flat: plateau found min {found:.1%}; false 'peaked' max {false_peak:.2%}")
    assert found >= 0.95 and false_peak <= 0.05


def test_peak_then_decline_is_peaked() -> None:
    """A decline of 10 SE_d after a peak at mid-training is reported as ``peaked``."""
    rate = min(float(np.mean(p)) for _, _, p in _run("peak", (10.0,)))
    print(f"\npeak then decline by 10 SE_d: 'peaked' min {rate:.1%}")
    assert rate >= 0.85
