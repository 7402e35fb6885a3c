"""fit_project / load_objective_model / predict_mixtures through the store, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import pytest

from engine.errors import FitError, InputError
from engine.laws.cv import fold_ids
from engine.laws.registry import mixture_law
from engine.services.fits import (
    choose_default,
    domain_effect,
    fit_project,
    held_out_predictions,
    load_objective_model,
    mean_mixture,
    predict_mixtures,
    set_default_law,
    fit_summaries_now,
)
from engine.services.ingest import ingest_files
from engine.services.tasks import law_change, stored_fit_report
from engine.store import session_scope
from engine.store.dataset import load_dataset

DOMAINS = ["web", "code", "books"]
T_WEB = np.array([-1.2, 0.8, 0.4])
T_CODE = np.array([0.9, -1.5, 0.6])


def synthetic_project(tmp_path: Path, url: str, name: str = "laws", n: int = 40) -> str:
    rng = np.random.default_rng(0)
    mixtures = rng.dirichlet(np.ones(3), n)
    lines = ["run_id,tokens,mix:web,mix:code,mix:books,loss:web,loss:code,acc:quiz"]
    for i, p in enumerate(mixtures):
        web = 2.0 + np.exp(p @ T_WEB) + rng.normal(0, 0.01)
        code = 1.5 + np.exp(p @ T_CODE) + rng.normal(0, 0.01)
        quiz = 0.3 + 0.2 * p[2] + rng.normal(0, 0.005)
        lines.append(f"r{i},1000000000,{p[0]:.6f},{p[1]:.6f},{1 - p[0] - p[1]:.6f},{web:.5f},{code:.5f},{quiz:.5f}")
    path = tmp_path / f"{name}.csv"
    path.write_text("\n".join(lines) + "\n")
    ingest_files(name, [path], url=url)
    return name


def test_fit_store_reload_gives_identical_predictions(tmp_path, db_url):
    project = synthetic_project(tmp_path, db_url)
    report = fit_project(project, objective="mean", bootstrap=8, url=db_url)
    assert {r.law for r in report.rows} == {"linear", "exponential", "gp", "lightgbm", "stack"}
    assert all(r.error is None and not r.reused for r in report.rows)
    with session_scope(db_url) as s:
        dataset = load_dataset(s, project)
    probe = np.random.default_rng(1).dirichlet(np.ones(3), 25)
    for law in ("linear", "exponential", "gp", "lightgbm", "stack"):
        law_cls = mixture_law(law)
        # as fit_law does: the seed where the law takes one, then options chosen by CV pilots on the folds
        options = {"seed": 0} if law in ("gp", "stack") else {}
        options = law_cls.choose_options(dataset.mixtures, dataset.final, fold_ids(dataset.n_runs, 5, 0), options)
        fresh = law_cls.fit_batch(dataset.mixtures, dataset.final, np.ones((1, dataset.n_runs)), options=options)[0]
        expected = np.column_stack([m.predict(probe) for m in fresh])
        model = load_objective_model(project, objective="mean", law=law, url=db_url)
        assert model.targets == ["web", "code", "quiz"]
        # identical up to rounding: the objective predicts all GP targets in one batched product
        np.testing.assert_allclose(model.predict_targets(probe), expected, rtol=1e-12, atol=1e-12)
        replicas = model.predict_targets_replicas(probe)
        assert replicas.shape == (8, 25, 3) and np.isfinite(replicas).all()
    again = fit_project(project, objective="mean", bootstrap=8, url=db_url)
    assert all(r.reused for r in again.rows)
    assert [r.spearman for r in again.rows] == [r.spearman for r in report.rows]
    # the reused rows' flags are read inside the database (JSON paths), on both backends
    assert [(r.smooth, r.refits_skipped) for r in again.rows] == [(r.smooth, r.refits_skipped) for r in report.rows]
    assert {r.law for r in again.rows if r.smooth} == {"linear", "exponential", "gp"}


def test_a_default_law_that_changed_with_the_runs_says_why(tmp_path, db_url):
    project = synthetic_project(tmp_path, db_url, n=40)
    fit_project(project, objective="mean", laws=["linear"], bootstrap=4, url=db_url)
    assert law_change(project, "mean", url=db_url) is None  # no earlier data to compare with
    more = synthetic_project(tmp_path, db_url, name="more", n=52)  # the same runs and 12 more, in another project
    with session_scope(db_url) as s:
        extra = load_dataset(s, more)
    lines = ["run_id,tokens,mix:web,mix:code,mix:books,loss:web,loss:code,acc:quiz"]
    for i in range(40, 52):
        p, y = extra.mixtures[i], extra.final[i]
        lines.append(f"r{i},1000000000,{p[0]:.6f},{p[1]:.6f},{p[2]:.6f},{y[0]:.5f},{y[1]:.5f},{y[2]:.5f}")
    (tmp_path / "extra.csv").write_text("\n".join(lines) + "\n")
    ingest_files(project, [tmp_path / "extra.csv"], url=db_url)
    report = fit_project(project, objective="mean", laws=["linear", "gp"], bootstrap=4, url=db_url)
    assert report.default_law == "gp" and report.n_runs == 52
    text = law_change(project, "mean", url=db_url)
    assert text.startswith("The default law changed from linear to gp because the runs changed")
    assert "on the previous 40 runs linear ranked" in text and "on the current 52 runs gp does" in text
    linear_now = next(r for r in report.rows if r.law == "linear")
    assert f"linear scores {linear_now.spearman:.2f} on them now" in text
    # the Fit page passes the runs it loaded once; the answer is the same as reading them again
    with session_scope(db_url) as s:
        loaded = load_dataset(s, project)
    assert law_change(project, "mean", url=db_url, dataset=loaded) == text


def test_objective_folds_direction_and_default_choice(tmp_path, sqlite_url):
    project = synthetic_project(tmp_path, sqlite_url)
    report = fit_project(project, objective="quiz", laws=["linear", "gp"], bootstrap=4, url=sqlite_url)
    model = load_objective_model(project, objective="quiz", law="linear", url=sqlite_url)
    assert model.weights.tolist() == [-1.0]  # accuracy: higher is better, so the objective is its negative
    # the objective falls as books grow: the linear law's book coefficient is the largest accuracy effect
    assert model.laws[0].coef_[2] == max(model.laws[0].coef_)
    assert report.default_law == choose_default(report.rows)
    assert all(r.spearman > 0.8 for r in report.rows)


def test_override_wins_until_cleared(tmp_path, sqlite_url):
    project = synthetic_project(tmp_path, sqlite_url)
    report = fit_project(project, objective="web", laws=["linear", "exponential"], bootstrap=4, url=sqlite_url)
    assert report.default_law == "exponential"  # data drawn from the exponential law
    set_default_law(project, "web", "linear", url=sqlite_url)
    assert load_objective_model(project, objective="web", url=sqlite_url).law == "linear"
    assert fit_project(project, objective="web", laws=["linear", "exponential"], bootstrap=4, url=sqlite_url).overridden
    set_default_law(project, "web", None, url=sqlite_url)
    assert load_objective_model(project, objective="web", url=sqlite_url).law == "exponential"
    with pytest.raises(InputError, match="unknown law 'bogus'"):
        set_default_law(project, "web", "bogus", url=sqlite_url)


def test_weighted_objective_and_gradient(tmp_path, sqlite_url):
    project = synthetic_project(tmp_path, sqlite_url)
    fit_project(project, objective="web=0.7,code=0.3", laws=["exponential"], bootstrap=4, url=sqlite_url)
    model = load_objective_model(project, objective={"web": 0.7, "code": 0.3}, url=sqlite_url)
    assert model.objective == "weighted:web=0.7,code=0.3"
    p = np.array([[0.5, 0.3, 0.2]])
    step = 1e-6
    numeric = [(model.predict(p + step * np.eye(3)[j]) - model.predict(p - step * np.eye(3)[j]))[0] / (2 * step)
               for j in range(3)]
    shares = torch.tensor(p, requires_grad=True)
    (model.predict_targets_torch(shares) @ torch.as_tensor(model.weights)).sum().backward()
    np.testing.assert_allclose(shares.grad.numpy()[0], numeric, rtol=1e-5, atol=1e-7)


def test_predict_mixtures_cleans_names_and_reports_bad_rows(tmp_path, sqlite_url):
    project = synthetic_project(tmp_path, sqlite_url)
    fit_project(project, objective="web", laws=["linear"], bootstrap=10, url=sqlite_url)
    good = tmp_path / "candidates.csv"
    good.write_text("index,train_corpus_web,train_corpus_code\nA,0.5,0.5\nB,0.9,0.1\n")
    table = predict_mixtures(project, good, objective="web", url=sqlite_url)
    assert table.names == ["A", "B"]
    np.testing.assert_allclose(table.mixtures, [[0.5, 0.5, 0.0], [0.9, 0.1, 0.0]])
    assert table.notes == ["domains not in the file get share 0: books"]
    assert (table.lower <= table.predicted).all() and (table.predicted <= table.upper).all()
    bad = tmp_path / "bad.csv"
    bad.write_text("web,code,books\n0.2,0.3,0.5\n0.2,x,0.8\n")
    with pytest.raises(InputError) as info:
        predict_mixtures(project, bad, objective="web", url=sqlite_url)
    assert (info.value.file, info.value.row, info.value.column) == ("bad.csv", 3, "code")
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("web,video\n0.5,0.5\n")
    with pytest.raises(InputError, match="column 'video' names no domain"):
        predict_mixtures(project, unknown, objective="web", url=sqlite_url)


def test_views_for_the_fit_page(tmp_path, sqlite_url):
    project = synthetic_project(tmp_path, sqlite_url)
    fit_project(project, objective="code", laws=["linear", "lightgbm"], bootstrap=6, url=sqlite_url)
    held = held_out_predictions(project, objective="code", url=sqlite_url)
    assert sorted(set(held.law)) == ["lightgbm", "linear"] and len(held.run) == 80
    # the page's shortcut: the runs loaded once and passed in give the same views
    with session_scope(sqlite_url) as s:
        loaded = load_dataset(s, project)
    again = held_out_predictions(project, objective="code", url=sqlite_url, dataset=loaded)
    assert again.run == held.run and np.array_equal(again.predicted, held.predicted)
    domains, mean = mean_mixture(project, url=sqlite_url)
    assert mean_mixture(project, url=sqlite_url, dataset=loaded)[0] == domains
    np.testing.assert_array_equal(mean_mixture(project, url=sqlite_url, dataset=loaded)[1], mean)
    report = stored_fit_report(project, "code", ["linear", "lightgbm"], url=sqlite_url)
    assert report is not None and report == stored_fit_report(project, "code", ["linear", "lightgbm"], url=sqlite_url,
                                                              dataset=loaded)
    model = load_objective_model(project, objective="code", law="linear", url=sqlite_url)
    effect = domain_effect(model, np.array([0.4, 0.3, 0.3]), "code")
    assert effect.shares[0] == 0 and effect.shares[-1] == 1
    assert effect.predicted[-1] < effect.predicted[0]  # code loss falls as code grows (t_code = -1.5)
    assert (effect.lower <= effect.upper).all()


def test_too_few_runs_is_a_clear_error(tmp_path, sqlite_url):
    project = synthetic_project(tmp_path, sqlite_url, name="tiny", n=3)
    with pytest.raises(FitError, match="at least 4 runs"):
        fit_project(project, objective="web", laws=["linear"], url=sqlite_url)
    assert fit_summaries_now(project, objective="web", url=sqlite_url) == []


def test_a_fit_reports_progress_per_law_and_a_cancel_stores_nothing(tmp_path, sqlite_url):
    from engine.progress import Cancelled

    project = synthetic_project(tmp_path, sqlite_url, name="progress")
    events = []
    fit_project(project, laws=["linear", "exponential"], bootstrap=4, url=sqlite_url, progress=events.append)
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert any("exponential" in e.message for e in events) and any("linear" in e.message for e in events)

    def cancel_at_the_second_law(event):
        if "exponential" in event.message:
            raise Cancelled

    with pytest.raises(Cancelled):
        fit_project(project, objective="web", laws=["linear", "exponential"], bootstrap=4, url=sqlite_url,
                    progress=cancel_at_the_second_law)
    assert not [f for f in fit_summaries_now(project, objective="web", url=sqlite_url)]


def test_refits_go_to_laws_that_could_be_chosen_and_to_a_law_asked_for_alone(tmp_path, sqlite_url):
    from engine.services.fits import REFIT_MARGIN

    project = synthetic_project(tmp_path, sqlite_url)
    report = fit_project(project, objective="mean", laws=["linear", "exponential", "gp"], bootstrap=8, url=sqlite_url)
    best = max(r.spearman for r in report.rows)
    for row in report.rows:
        assert row.refits_skipped == (row.spearman < best - REFIT_MARGIN), row
    skipped = [r.law for r in report.rows if r.refits_skipped]
    assert skipped == ["linear"]  # losses drawn from the exponential law: the plane ranks their mean worst
    behind = load_objective_model(project, objective="mean", law="linear", url=sqlite_url)
    assert not behind.has_refits  # its interval: the held-out residuals, calibrated like any other
    assert np.isfinite([r.coverage for r in report.rows]).all()
    # Asked for alone (or made the project's law), it gets its refits, and that row is the one used.
    alone = fit_project(project, objective="mean", laws=["linear"], bootstrap=8, url=sqlite_url)
    assert not alone.rows[0].refits_skipped and not alone.rows[0].reused
    assert load_objective_model(project, objective="mean", law="linear", url=sqlite_url).has_refits
    again = fit_project(project, objective="mean", laws=["linear", "exponential", "gp"], bootstrap=8, url=sqlite_url)
    assert all(r.reused for r in again.rows) and not any(r.refits_skipped for r in again.rows)
