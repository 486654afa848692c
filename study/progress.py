"""A compact progress display for the driver (instead of Ray Tune's tables): one line per trial report."""

from __future__ import annotations

import sys
import time
from typing import Any

from ray.tune import Callback


class CompactProgress(Callback):
    """``[12:03:04] t0_schedule=linear  epoch  4/30  loss 0.1035  IS ancestral-50 3.72  ddim-20 3.86``."""

    def __init__(self) -> None:
        # No stream is stored: Tune pickles its callbacks with the experiment state (tuner.pkl).
        self.latest_is: dict[str, dict[str, float]] = {}

    def _print(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stdout, flush=True)

    @staticmethod
    def _name(trial: Any) -> str:
        return trial.config["trial"]["name"]

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._print(f"{self._name(trial)}  started")

    def on_trial_restore(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._print(f"{self._name(trial)}  restored from its checkpoint")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        name = self._name(trial)
        scores = self.latest_is.setdefault(name, {})
        scores |= {k[3:]: v for k, v in result.items() if k.startswith("is/")}
        epochs = trial.config["trial"]["spec"]["training"]["epochs"]
        width = len(str(epochs))
        line = f"{name}  epoch {result.get('epoch', 0):>{width}}/{epochs}  loss {result.get('loss', float('nan')):.4f}"
        if scores:
            line += "  IS " + "  ".join(f"{k} {v:.2f}" for k, v in scores.items())
        if result.get("diverged"):
            line += "  DIVERGED (non-finite loss; trial stopped, study goes on)"
        self._print(line)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._print(f"{self._name(trial)}  done")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._print(f"{self._name(trial)}  ERROR (see {trial.local_path}/error.txt)")
