"""Names stay names (never paths); predictions far outside the observed range are flagged on the plan."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import InputError
from engine.plan.plausibility import implausible_prediction
from engine.services.projects import create_project, validate_project_name


@pytest.mark.parametrize("name", ["../../etc/passwd", "..", ".", "a/b", "a\\b", "tab\there", "nul\x00", "new\nline"])
def test_project_names_that_could_become_paths_are_refused(name):
    with pytest.raises(InputError, match="cannot hold|contains"):
        validate_project_name(name)


@pytest.mark.parametrize("name", ["pile-1m", "RegMix 1M: v2", "a_b", "r 1", "données", "x.y"])
def test_ordinary_names_are_kept_as_given(name):
    assert validate_project_name(f"  {name} ") == name


def test_a_path_like_project_name_changes_nothing(sqlite_url, tmp_path):
    with pytest.raises(InputError):
        create_project("../../etc/passwd", url=sqlite_url)
    from engine.services.projects import list_projects

    assert list_projects(sqlite_url) == []


def test_checkpoint_paths_are_keyed_by_run_ids(tmp_path, monkeypatch):
    """Names such as 'a/b'+'r 1' and 'a_b'+'r_1' sanitised to one file; ids cannot collide or climb."""
    from engine.train.loop import checkpoint_path

    monkeypatch.setenv("MIXPLAN_HOME", str(tmp_path))
    first, second = checkpoint_path(1), checkpoint_path(2)
    assert first != second
    assert first.parent == second.parent == tmp_path / "checkpoints"
    assert first.name == "run-1.pt"


def test_a_prediction_far_below_every_observed_loss_is_flagged():
    observed = np.array([1.9, 2.4, 3.4, 2.8, np.nan])
    warning = implausible_prediction(-55.47, observed)
    assert warning is not None and "-55.47" in warning and "below the lowest" in warning and "1.9" in warning
    assert implausible_prediction(1.2, observed) is None  # lower than observed, within one spread: plausible
    assert implausible_prediction(0.3, observed) is not None  # 1.9 - 1.5 = 0.4 is the edge
    assert implausible_prediction(9.0, observed) is not None and "above the highest" in implausible_prediction(9.0, observed)
    assert implausible_prediction(float("nan"), observed) is not None

