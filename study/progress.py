"""A compact progress display for the driver (instead of Ray Tune's tables): one line per trial report."""

from __future__ import annotations

import sys
import time
from typing import Any

from ray.tune import Callback

from study.contract import keys


class CompactProgress(Callback):
    """``[12:03:04] t0_schedule=linear  epoch  4/30  loss 0.1035  IS ddim-20 3.86 [3.71, 4.02] rising``.

    Scores appear on the line of the epoch that measured them, never carried forward to later epochs. A trial
    prints a line at every evaluation and when it ends, and otherwise at most every ``QUIET_S`` seconds, so a study
    of hundreds of one-second epochs stays readable.
    """

    QUIET_S = 30.0

    def __init__(self) -> None:
        self.last_line: dict[str, float] = {}  # trial name -> time of its last printed line

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
        now = time.monotonic()
        # the IS means this result carries, by evaluation (only an epoch that evaluated has any)
        means = {p[1]: value for k, value in result.items() if (p := keys.parse_report_key(k)) and p[0] == "is"}
        if not (means or result.get(keys.REPORT_STATUS) or now - self.last_line.get(name, -1e9) >= self.QUIET_S):
            return
        self.last_line[name] = now
        epochs = trial.config["trial"]["spec"]["training"]["epochs"]
        width = len(str(epochs))
        epoch, loss = result.get(keys.REPORT_EPOCH, 0), result.get(keys.REPORT_LOSS, float("nan"))
        line = f"{name}  epoch {epoch:>{width}}/{epochs}  loss {loss:.4f}"
        scores = []
        for ev, value in means.items():
            lo, hi = result.get(keys.report_key("is_ci_low", ev)), result.get(keys.report_key("is_ci_high", ev))
            ci = f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else ""
            scores.append(f"{ev} {value:.2f}{ci} {result.get(keys.report_key('state', ev), '')}".rstrip())
        if scores:
            line += "  IS " + "  ".join(scores)
        status = result.get(keys.REPORT_STATUS)
        if status == "diverged":
            line += "  DIVERGED (non-finite loss; trial stopped, study goes on)"
        elif status == "converged":
            line += f"  CONVERGED, stopped early ({result.get(keys.REPORT_STOP_REASON, '')})"
        self._print(line)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._print(f"{self._name(trial)}  done")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._print(f"{self._name(trial)}  ERROR (see {trial.local_path}/error.txt)")
