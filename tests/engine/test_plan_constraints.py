"""Constraints: resolution into bounds, and errors that name the conflicting constraints."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import InputError, PlanError
from engine.plan.baselines import unimax
from engine.plan.constraints import Constraints, project_box_simplex, resolve, tag_matches

DOMAINS = ["web", "code", "arxiv", "books"]
UNIQUE = np.array([1e12, 5e10, 6.2e7, 2e9])
TAGS = [{"license": "cc-by"}, {"license": "noncommercial"}, {"license": "cc-by", "quality": "high"},
        {"tags": ["noncommercial", "fiction"]}]


def bounds(constraints, budget=25e9):
    return resolve(constraints, DOMAINS, unique_tokens=UNIQUE, budget_tokens=budget, domain_tags=TAGS)


def test_epoch_caps_become_upper_bounds():
    b = bounds(Constraints(max_epochs=4))
    assert b.hi[2] == pytest.approx(4 * 6.2e7 / 25e9)
    assert "4 epochs of 62M unique tokens" in b.why_hi[2]
    assert b.hi[0] == 1.0


def test_caps_that_cannot_sum_to_one_name_every_cap():
    with pytest.raises(PlanError) as err:
        bounds(Constraints(max_epochs=4, exclude=("web",)), budget=1e12)
    text = str(err.value)
    assert "allow at most" in text and "at 1T tokens" in text
    assert "web excluded (--exclude)" in text
    assert "arxiv<=0.000248 (4 epochs of 62M unique tokens)" in text
    assert "code<=0.2 (4 epochs of 50B unique tokens)" in text


def test_lower_bounds_over_one_are_named():
    with pytest.raises(PlanError, match=r"need 1\.2 in total.*code>=0\.7 \(--min\).*web>=0\.5 \(--min\)"):
        bounds(Constraints(lower={"code": 0.7, "web": 0.5}))


def test_min_above_cap_names_both():
    with pytest.raises(PlanError, match=r"arxiv>=0\.1 \(--min\) conflicts with arxiv<=0\.00992 \(4 epochs"):
        bounds(Constraints(lower={"arxiv": 0.1}, max_epochs=4))


def test_fixed_share_of_an_excluded_domain_conflicts():
    with pytest.raises(PlanError, match=r"--fix code=0\.2 conflicts with code excluded \(tag license=noncommercial\)"):
        bounds(Constraints(fixed={"code": 0.2}, exclude_tags=("license=noncommercial",)))


def test_unknown_names_and_tags_are_input_errors():
    with pytest.raises(InputError, match="--min names domain 'wiki'.*use one of: web, code, arxiv, books"):
        bounds(Constraints(lower={"wiki": 0.1}))
    with pytest.raises(InputError, match="--exclude-tag 'license=gpl' matches no domain"):
        bounds(Constraints(exclude_tags=("license=gpl",)))
    with pytest.raises(InputError, match="between 0 and 1"):
        Constraints(upper={"web": 1.5})
    with pytest.raises(InputError, match="--max-epochs"):
        Constraints(max_epochs=-1)


def test_tags_match_by_key_value_list_and_bare_value():
    assert tag_matches(TAGS[1], "license=noncommercial")
    assert not tag_matches(TAGS[0], "license=noncommercial")
    assert tag_matches(TAGS[3], "noncommercial") and tag_matches(TAGS[3], "tags=fiction")
    assert tag_matches(TAGS[2], "quality") and tag_matches(TAGS[1], "noncommercial")
    b = bounds(Constraints(exclude_tags=("noncommercial",)))
    assert list(b.hi) == [1.0, 0.0, 1.0, 0.0]


def test_projection_lands_on_the_box_simplex():
    rng = np.random.default_rng(0)
    lo, hi = np.array([0.1, 0.0, 0.0, 0.2]), np.array([0.5, 0.3, 0.01, 1.0])
    p = project_box_simplex(rng.normal(size=(200, 4)) * 3, lo, hi)
    assert np.all(p >= lo - 1e-12) and np.all(p <= hi + 1e-12)
    assert np.abs(p.sum(axis=1) - 1).max() <= 1e-9
    inside = np.array([[0.3, 0.2, 0.0, 0.5]])
    assert project_box_simplex(inside, lo, hi) == pytest.approx(inside)


def test_unimax_spreads_uniformly_under_the_cap():
    shares = unimax(UNIQUE, 25e9, 4)
    assert shares.sum() == pytest.approx(1.0)
    assert shares[2] == pytest.approx(4 * 6.2e7 / 25e9)  # arxiv capped
    assert shares[3] == pytest.approx(shares[1]) or shares[3] == pytest.approx(4 * 2e9 / 25e9)
    assert shares[0] == pytest.approx(shares[1])  # the rest share what is left equally


def test_a_tiny_lower_bound_on_an_excluded_domain_is_a_conflict_not_a_leak():
    # Found by the property test: --min a=1e-12 with a excluded by tag used to give a a share of 1e-12.
    import numpy as np
    import pytest

    from engine.errors import PlanError
    from engine.plan.constraints import Constraints, resolve

    with pytest.raises(PlanError, match="excluded"):
        resolve(Constraints(lower={"a": 1e-12}, exclude_tags=("license=nc",)), ["a", "b"],
                unique_tokens=np.array([np.nan, np.nan]), budget_tokens=1e9,
                domain_tags=[{"license": "nc"}, {}])
