"""The dashboard's long tasks as job work: fit, plan, budget sweep, suggestion.

Each ``*_work`` returns a function of the progress callback that does the work and
returns a small JSON-able result for the job row; the pages submit them to the
:class:`engine.services.jobs.JobRunner` and read results back with the helpers here.
The settings dicts are what the job key hashes, so the demo's stored plan, a page
and a second tab asking for the same thing agree on the key.
"""

from __future__ import annotations

from dataclasses import asdict
from functools import partial
from typing import Callable

from engine.plan.constraints import Constraints
from engine.plan.plan import Plan
from engine.plan.sweep import BudgetSweep, sweep_budgets
from engine.progress import ProgressCallback, report, scaled
from engine.services import fits
from engine.services.plans import PlanningInputs, plan_from_inputs, planning_inputs
from engine.store import session_scope
from engine.store.dataset import Dataset, at_proxy_scale, load_dataset

InputsLoader = Callable[[str, str, "float | None", str], PlanningInputs]


def plan_settings(objective: str, budget_tokens: float, constraints: Constraints, *, model_params: float | None = None,
                  repetition_form: str = "muennighoff") -> dict:
    return {"objective": objective, "budget_tokens": float(budget_tokens), "model_params": model_params,
            "repetition_form": repetition_form, "constraints": constraints.to_dict()}


def sweep_settings(objective: str, budgets: list[float], constraints: Constraints, *,
                   model_params: float | None = None, repetition_form: str = "muennighoff") -> dict:
    return {"objective": objective, "budgets": [float(b) for b in budgets], "model_params": model_params,
            "repetition_form": repetition_form, "constraints": constraints.to_dict()}


def fit_settings(objective: str, laws: list[str]) -> dict:
    return {"objective": objective, "laws": sorted(laws)}


def default_loader(url: str | None) -> InputsLoader:
    def load(project: str, objective: str, model_params: float | None, form: str) -> PlanningInputs:
        return planning_inputs(project, objective=objective, model_params=model_params, repetition_form=form, url=url)
    return load


def fit_work(project: str, settings: dict, *, url: str | None = None) -> Callable[[ProgressCallback], dict]:
    """Picklable: the runner runs fits in a worker process."""
    return partial(_fit, project, settings, url)


def _fit(project: str, settings: dict, url: str | None, progress: ProgressCallback) -> dict:
    report(progress, "fitting laws", 0, 1)
    result = fits.fit_project(project, objective=settings["objective"], laws=list(settings["laws"]), url=url,
                              progress=progress)
    return fit_report_to_dict(result)


def plan_work(project: str, settings: dict, load: InputsLoader, *, url: str | None = None) -> Callable[[ProgressCallback], dict]:
    def work(progress: ProgressCallback) -> dict:
        report(progress, "loading the laws", 0, 2)
        inputs = load(project, settings["objective"], settings["model_params"], settings["repetition_form"])
        report(progress, "planning", 1, 2)
        plan = plan_from_inputs(inputs, settings["budget_tokens"], Constraints.from_dict(settings["constraints"]),
                                url=url, progress=scaled(progress, 0.5, 1.0))
        return plan.to_dict()
    return work


def sweep_work(project: str, settings: dict, *, url: str | None = None) -> Callable[[ProgressCallback], dict]:
    """Picklable: the runner runs budget sweeps in a worker process (which loads the laws itself)."""
    return partial(_sweep, project, settings, url)


def _sweep(project: str, settings: dict, url: str | None, progress: ProgressCallback) -> dict:
    report(progress, "loading the laws", 0, 1)
    inputs = default_loader(url)(project, settings["objective"], settings["model_params"], settings["repetition_form"])
    return sweep_budgets(inputs.model, inputs.context, list(settings["budgets"]),
                         Constraints.from_dict(settings["constraints"]), objective=settings["objective"],
                         progress=progress).to_dict()


def suggest_work(project: str, settings: dict, n: int, load: InputsLoader, *,
                 url: str | None = None) -> Callable[[ProgressCallback], dict]:
    from engine.services.next_runs import suggest_pending

    def work(progress: ProgressCallback) -> dict:
        inputs = load(project, settings["objective"], settings["model_params"], settings["repetition_form"])
        pending = suggest_pending(project, settings["budget_tokens"], n, Constraints.from_dict(settings["constraints"]),
                                  objective=settings["objective"], inputs=inputs, url=url, progress=progress)
        return {"round": pending[0].round if pending else None, "runs": [p.name for p in pending]}
    return work


def fit_report_to_dict(report_: fits.FitReport) -> dict:
    return asdict(report_)


def fit_report_from_dict(doc: dict) -> fits.FitReport:
    rows = [fits.LawRow(**r) for r in doc["rows"]]
    return fits.FitReport(**{**doc, "rows": rows})


def plan_from_result(doc: dict) -> Plan:
    return Plan.from_dict(doc)


def sweep_from_result(doc: dict) -> BudgetSweep:
    return BudgetSweep(**doc)


def stored_fit_report(project: str, objective: str, laws: list[str], *, url: str | None = None,
                      dataset: Dataset | None = None) -> fits.FitReport | None:
    """The fit report of the stored fits on the project's current data, without fitting anything;
    None unless every law in ``laws`` has a stored fit. ``dataset``: the project's runs, if loaded already."""
    if dataset is None:
        with session_scope(url) as s:
            dataset = load_dataset(s, project)  # read once for both calls below
    dataset = at_proxy_scale(dataset)
    stored = {f.law: f for f in fits.fit_summaries_now(project, objective=objective, url=url, dataset=dataset)}
    if not stored or any(law not in stored for law in laws):
        return None
    chosen = [stored[law] for law in laws]
    rows = [fits._row_from_fit(f, reused=True) for f in chosen]
    default = fits.default_law(project, objective=objective, url=url, fits=chosen, dataset=dataset)
    # the fits are on the current data (its hash), so they were fitted on these runs
    return fits.FitReport(project, chosen[0].objective, chosen[0].data_hash, dataset.n_runs, rows, default,
                          overridden=default != fits.choose_default(rows))


def law_change(project: str, objective: str, *, url: str | None = None, dataset: Dataset | None = None) -> str | None:
    """Why the default law is not what it was: when the CV winner on the current runs differs from the
    winner on the previous data, one sentence with both laws' held-out Spearman and run counts."""
    from engine.laws.objective import parse_objective
    from engine.store.queries import fit_summaries, project_id

    with session_scope(url) as s:
        dataset = at_proxy_scale(dataset if dataset is not None else load_dataset(s, project))
        spec = parse_objective(objective, dataset.targets, dataset.directions)
        rows = fit_summaries(s, project_id(s, project), spec.key)
        previous_hash = next((f.data_hash for f in rows if f.data_hash != dataset.data_hash), None)
        if previous_hash is None:
            return None

        def newest(data_hash: str) -> dict:
            found: dict = {}
            for f in rows:
                if f.data_hash == data_hash:
                    found.setdefault(f.law, f)
            return found

        now, before = newest(dataset.data_hash), newest(previous_hash)
        if not now or not before:
            return None
        winner_now = fits.choose_default([fits._row_from_fit(f, reused=True) for f in now.values()])
        winner_before = fits.choose_default([fits._row_from_fit(f, reused=True) for f in before.values()])
        if winner_now is None or winner_before is None or winner_now == winner_before:
            return None

        def rho(f) -> str:
            value = (f.cv_metrics or {}).get("spearman")
            return "n/a" if value is None else f"{value:.2f}"

        def runs(f) -> int:  # the runs its CV predicted (every run of that data with a measured objective)
            return int((f.cv_metrics or {}).get("n", 0))

        then = (f"{winner_before} scores {rho(now[winner_before])} on them now" if winner_before in now
                else f"{winner_before} is not fitted on them yet")
        return (f"The default law changed from {winner_before} to {winner_now} because the runs changed: on the "
                f"previous {runs(before[winner_before])} runs {winner_before} ranked held-out runs best (Spearman "
                f"{rho(before[winner_before])}); on the current {runs(now[winner_now])} runs {winner_now} does "
                f"(Spearman {rho(now[winner_now])}) and {then}. Pick a law below to keep one regardless.")
