"""Dataset specs, discriminated by ``kind``.

To add a dataset: a model here with a unique ``kind`` literal, added to ``DatasetSpec``,
and a loader registered under the same kind in ``trainables/data.py``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from study.spec.base import Strict


class DigitsData(Strict):
    """scikit-learn's 1797 handwritten digits (ships inside the package, works offline).

    8x8 grey-scale images scaled to [-1, 1] and bilinearly upscaled to ``resolution``; a fixed
    stratified split keeps ``held_out_fraction`` of the images for the IS reference.
    """

    kind: Literal["digits"] = "digits"
    resolution: Literal[8, 16, 32] = 16
    held_out_fraction: float = Field(0.25, gt=0.0, lt=1.0)
    split_seed: int = 0


DatasetSpec = DigitsData
