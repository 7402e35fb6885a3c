"""Property: every plan respects every constraint it was given and sums to 1."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.errors import PlanError
from engine.plan.budget_law import BudgetAwareModel
from engine.plan.constraints import Constraints, resolve
from engine.plan.optimize import OptimizerSettings
from engine.plan.plan import PlanContext, make_plan
from engine.plan.repetition import RepetitionLaw
from engine.plan.synthetic import truth
from engine.plan.token_law import TokenLaw

DOMAINS = ["a", "b", "c", "d", "e"]
UNIQUE = np.array([1e8, 1e9, 1e10, 1e11, np.nan])
TAGS = [{"license": "nc"}, {}, {"license": "nc"}, {}, {}]
FAST = OptimizerSettings(n_samples=300, n_local=100, shortlist=100, top_k=20, steps=5, n_starts=1,
                         n_replica_optima=0)
rng = np.random.default_rng(0)
OBSERVED = rng.dirichlet(np.ones(5), 30)
MODEL = BudgetAwareModel(truth(np.array([0.3, 0.2, 0.1, 0.1, 0.05]), DOMAINS), UNIQUE, RepetitionLaw(),
                         TokenLaw(np.array([400.0]), np.array([0.3]), "prior", 1e9))
CTX = PlanContext(OBSERVED, MODEL.base.predict(OBSERVED), [str(i) for i in range(30)], UNIQUE, TAGS,
                  [None] * 5, "prop", "h")

share = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def constraint_sets(draw):
    names = st.sampled_from(DOMAINS)
    lower = draw(st.dictionaries(names, st.floats(0.0, 0.4), max_size=2))
    upper = draw(st.dictionaries(names, st.floats(0.05, 1.0), max_size=2))
    fixed = draw(st.dictionaries(names, st.floats(0.0, 0.3), max_size=1))
    exclude = tuple(draw(st.lists(names, max_size=1)))
    tags = tuple(draw(st.lists(st.just("license=nc"), max_size=1)))
    epochs = draw(st.one_of(st.none(), st.floats(0.5, 50.0)))
    return Constraints(lower=lower, upper=upper, fixed=fixed, exclude=exclude, exclude_tags=tags, max_epochs=epochs)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(constraints=constraint_sets(), budget=st.floats(1e8, 1e12), smooth=st.booleans(),
       trust=st.sampled_from([np.inf, 1.0]))
def test_every_plan_respects_every_constraint(constraints, budget, smooth, trust):
    try:
        bounds = resolve(constraints, DOMAINS, unique_tokens=UNIQUE, budget_tokens=budget, domain_tags=TAGS)
    except PlanError:
        assume(False)
    MODEL.base.smooth = smooth
    plan = make_plan(MODEL, CTX, budget, constraints, settings=OptimizerSettings(**{**FAST.__dict__,
                                                                                   "trust_scale": trust}))
    p = plan.mixture_array()
    assert abs(p.sum() - 1.0) <= 1e-9
    assert np.all(p >= bounds.lo - 1e-9) and np.all(p <= bounds.hi + 1e-9)
    for name, value in constraints.fixed.items():
        assert abs(plan.recommended.mixture[name] - value) <= 1e-9
    for name in constraints.exclude:
        assert plan.recommended.mixture[name] == 0.0
    if constraints.exclude_tags:
        assert plan.recommended.mixture["a"] == 0.0 and plan.recommended.mixture["c"] == 0.0
    for name, value in constraints.lower.items():
        assert plan.recommended.mixture[name] >= value - 1e-9
    if constraints.max_epochs is not None:
        for name, epochs in plan.recommended.epochs.items():
            assert epochs is None or epochs <= constraints.max_epochs * (1 + 1e-9)
    for option in plan.baselines:  # baselines are compared under the same rules
        q = np.array(list(option.mixture.values()))
        assert abs(q.sum() - 1.0) <= 1e-9 and np.all(q >= bounds.lo - 1e-9) and np.all(q <= bounds.hi + 1e-9)
