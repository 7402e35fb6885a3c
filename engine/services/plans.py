"""Planning use-cases: make, store and list plans; sweep budgets; suggest the next runs.

The CLI and the Plan page call these; all the numbers come from ``engine.plan``.
The mixing law comes from :func:`engine.services.fits.load_objective_model`
(the law chosen by cross-validation, or the one the user names).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from engine.actions import record_action
from engine.errors import InputError
from engine.plan.budget_law import BudgetAwareModel, build_budget_model
from engine.plan.constraints import Constraints
from engine.plan.optimize import OptimizerSettings
from engine.plan.plausibility import implausible_prediction
from engine.plan.plan import Plan, PlanContext, make_plan, with_id
from engine.plan.suggest import Suggestion, suggest_runs
from engine.plan.sweep import SWEEP_SETTINGS, BudgetSweep, sweep_budgets
from engine.progress import ProgressCallback, report, scaled
from engine.store import Plan as PlanRow
from engine.store import session_scope
from engine.store.queries import project_id
from engine.store.session import retry_write, store_error
from engine.store.dataset import at_proxy_scale, load_dataset

log = logging.getLogger(__name__)


@dataclass
class PlanningInputs:
    """The budget-aware model and the runs, ready for any number of plans (the page caches this)."""

    model: BudgetAwareModel
    context: PlanContext
    objective: str
    law_fit_ids: list[int]


def planning_inputs(
    project: str,
    *,
    objective: str = "mean",
    law: str | None = None,
    model_params: float | None = None,
    repetition_form: str = "muennighoff",
    url: str | None = None,
) -> PlanningInputs:
    """Load the runs and the fitted objective model of ``project`` and wrap it for budgets."""
    from engine.services.fits import objective_model_with_fit  # the fit area's services

    # Loaded once and passed down: the fit services would otherwise read the project again for each step.
    with session_scope(url) as s:
        dataset = load_dataset(s, project)
    if dataset.n_runs == 0:
        raise InputError(f"project '{project}' has no complete runs.", hint="upload runs first (mixplan ingest).")
    base, fit_id = objective_model_with_fit(project, objective=objective, law=law, url=url, dataset=dataset)
    model = build_budget_model(dataset, base, repetition_form=repetition_form, model_params=model_params)
    # The repetition and token laws read every run and curve; the mixing law and the runs the plan is
    # compared with (trust region, best observed run) are those at the proxy scale.
    return PlanningInputs(model, PlanContext.from_dataset(at_proxy_scale(dataset), model), objective, [fit_id])


def plan_from_inputs(
    inputs: PlanningInputs,
    budget_tokens: float,
    constraints: Constraints = Constraints(),
    *,
    settings: OptimizerSettings = OptimizerSettings(),
    store: bool = True,
    url: str | None = None,
    progress: ProgressCallback | None = None,
) -> Plan:
    plan = make_plan(inputs.model, inputs.context, budget_tokens, constraints, objective=inputs.objective,
                     settings=settings, law_fit_ids=inputs.law_fit_ids, progress=progress)
    warning = implausible_prediction(plan.recommended.objective, inputs.context.observed_objective)
    if warning is not None:
        plan = replace(plan, notes=[*plan.notes, f"warning: {warning}"])
    return save_plan(plan, url=url) if store else plan


def make_project_plan(
    project: str,
    budget_tokens: float,
    constraints: Constraints = Constraints(),
    *,
    objective: str = "mean",
    law: str | None = None,
    model_params: float | None = None,
    repetition_form: str = "muennighoff",
    settings: OptimizerSettings = OptimizerSettings(),
    store: bool = True,
    url: str | None = None,
    progress: ProgressCallback | None = None,
) -> Plan:
    """The recommended mixture of ``project`` for ``budget_tokens``, stored in the ``plan`` table."""
    report(progress, "loading", 0, 1, "runs and fitted laws")
    inputs = planning_inputs(project, objective=objective, law=law, model_params=model_params,
                             repetition_form=repetition_form, url=url)
    return plan_from_inputs(inputs, budget_tokens, constraints, settings=settings, store=store, url=url,
                            progress=progress)


def save_plan(plan: Plan, *, url: str | None = None) -> Plan:
    def write() -> int:
        with session_scope(url) as s:
            row = PlanRow(project_id=project_id(s, plan.project), law_fit_ids=plan.law_fit_ids, objective=plan.objective,
                          budget_tokens=plan.budget_tokens, model_params=plan.model_params,
                          constraints=plan.constraints, mixture=plan.recommended.mixture, result=plan.to_dict())
            s.add(row)
            s.flush()
            record_action(s, "plan", plan.project, {"plan": row.id, "budget_tokens": plan.budget_tokens})
            return row.id

    try:
        return with_id(plan, retry_write(write))
    except DBAPIError as exc:
        raise store_error(exc, "the plan could not be stored") from exc


def list_plans(project: str, *, url: str | None = None) -> list[Plan]:
    """Stored plans of ``project``, newest first."""
    with session_scope(url) as s:
        rows = s.scalars(select(PlanRow).where(PlanRow.project_id == project_id(s, project))
                         .order_by(PlanRow.id.desc())).all()
        return [with_id(Plan.from_dict(r.result), r.id) for r in rows]


def sweep_project(
    project: str,
    budgets: list[float],
    constraints: Constraints = Constraints(),
    *,
    objective: str = "mean",
    law: str | None = None,
    model_params: float | None = None,
    repetition_form: str = "muennighoff",
    settings: OptimizerSettings = SWEEP_SETTINGS,
    url: str | None = None,
    progress: ProgressCallback | None = None,
) -> BudgetSweep:
    report(progress, "loading", 0, 1, "runs and fitted laws")
    inputs = planning_inputs(project, objective=objective, law=law, model_params=model_params,
                             repetition_form=repetition_form, url=url)
    return sweep_budgets(inputs.model, inputs.context, budgets, constraints, objective=objective, settings=settings,
                         progress=progress)


def suggest_for_project(
    project: str,
    budget_tokens: float,
    n: int,
    constraints: Constraints = Constraints(),
    *,
    objective: str = "mean",
    law: str | None = None,
    model_params: float | None = None,
    seed: int = 0,
    url: str | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[Plan, Suggestion]:
    """The plan (not stored) and ``n`` proxy mixtures that would most narrow its interval."""
    if n < 1 or n > 1000:
        raise InputError(f"--n {n}: ask for between 1 and 1000 suggested runs.", hint="e.g. --n 8")
    inputs = planning_inputs(project, objective=objective, law=law, model_params=model_params, url=url)
    plan = plan_from_inputs(inputs, budget_tokens, constraints, store=False, url=url,
                            progress=scaled(progress, 0.0, 0.8))
    return plan, suggest_runs(inputs.model, plan, n, observed=inputs.context.observed, seed=seed,
                              progress=scaled(progress, 0.8, 1.0))

