"""Is a predicted objective one the data can support?

A law fitted on proxy runs can extrapolate to a budget far beyond them and predict a loss no run came
near (a 5-run project with 1,000-token runs predicted -55.47 where every observed loss was 1.9-3.4).
Such a prediction is shown with a warning that says why, instead of without a word.
"""

from __future__ import annotations

import math

import numpy as np


def implausible_prediction(predicted: float, observed: np.ndarray) -> str | None:
    """A warning when ``predicted`` lies further outside the observed objective range than the range is
    wide (below ``min - spread`` or above ``max + spread``), or is not a finite number; else None."""
    values = np.asarray(observed, dtype=float)
    values = values[np.isfinite(values)]
    if not math.isfinite(predicted):
        return f"the predicted objective is {predicted}, not a number the data can support; do not use this plan."
    if len(values) < 2:
        return None
    low, high = float(values.min()), float(values.max())
    spread = high - low
    if low - spread <= predicted <= high + spread:
        return None
    side = "below the lowest" if predicted < low else "above the highest"
    return (f"the predicted objective {predicted:.4g} is far {side} observed value (runs range {low:.4g} to "
            f"{high:.4g}, spread {spread:.3g}): the law is extrapolating beyond what the runs support; "
            "treat this plan as unreliable at this budget, or add proxy runs nearer to it.")
