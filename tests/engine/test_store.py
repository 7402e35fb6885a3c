from sqlalchemy import func, select

from engine.store import Measurement, Project, Run, EvalTarget, get_engine, session_scope
from engine.store.session import table_names


def test_schema_created_on_first_use(db_url):
    engine = get_engine(db_url)
    assert {"project", "domain", "eval_target", "run", "measurement", "law_fit", "plan", "job"} <= set(table_names(engine))


def test_transaction_rolls_back_on_error(db_url):
    with session_scope(db_url) as s:
        s.add(Project(name="p"))
    try:
        with session_scope(db_url) as s:
            p = s.scalar(select(Project).where(Project.name == "p"))
            s.add(Run(project_id=p.id, name="r1", mixture={"a": 1.0}))
            s.flush()
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with session_scope(db_url) as s:
        assert s.scalar(select(func.count()).select_from(Run)) == 0


def test_measurement_unique_per_point(db_url):
    import pytest
    from sqlalchemy.exc import IntegrityError

    with session_scope(db_url) as s:
        p = Project(name="p")
        s.add(p)
        s.flush()
        t = EvalTarget(project_id=p.id, name="loss")
        r = Run(project_id=p.id, name="r", mixture={"a": 1.0})
        s.add_all([t, r])
        s.flush()
        s.add(Measurement(run_id=r.id, target_id=t.id, tokens_seen=100, value=1.0))
    with pytest.raises(IntegrityError):
        with session_scope(db_url) as s:
            s.add(Measurement(run_id=r.id, target_id=t.id, tokens_seen=100, value=2.0))
