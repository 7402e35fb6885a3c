"""Mixing laws are fitted at one proxy scale when runs differ in tokens (the demo project does)."""

import numpy as np

from engine.store.dataset import Dataset, _with_hash, at_proxy_scale, proxy_scale_tokens


def make(tokens):
    n = len(tokens)
    mixtures = np.tile([[0.5, 0.5]], (n, 1))
    return _with_hash(Dataset(
        project="p", run_names=[f"r{i}" for i in range(n)], domains=["a", "b"], targets=["t"], directions=["lower"],
        mixtures=mixtures, final=np.arange(n, dtype=float)[:, None], tokens=np.asarray(tokens, dtype=float),
        model_params=np.full(n, np.nan), unique_tokens=np.full(2, np.nan),
        curve_run=np.arange(n), curve_target=np.zeros(n, dtype=int), curve_tokens=np.asarray(tokens, dtype=float),
        curve_value=np.arange(n, dtype=float),
    ))


def test_the_budget_most_runs_share_wins_and_ties_go_to_the_largest():
    assert proxy_scale_tokens(np.array([1e6, 1e6, 4e6, np.nan])) == 1e6
    assert proxy_scale_tokens(np.array([1e6, 4e6, 1e6, 4e6])) == 4e6
    assert np.isnan(proxy_scale_tokens(np.array([np.nan])))


def test_slice_keeps_runs_at_the_proxy_scale_and_renumbers_their_curves():
    ds = make([1e6, 4e6, 4e6, 1e6, 4e6])
    sliced = at_proxy_scale(ds)
    assert sliced.run_names == ["r1", "r2", "r4"]
    assert sliced.final[:, 0].tolist() == [1.0, 2.0, 4.0]
    assert sliced.curve_run.tolist() == [0, 1, 2] and sliced.curve_value.tolist() == [1.0, 2.0, 4.0]
    assert sliced.data_hash != ds.data_hash


def test_one_budget_or_unknown_tokens_leave_the_runs_as_they_are():
    same = make([1e6, 1.005e6, 1e6])
    assert at_proxy_scale(same) is same
    unknown = make([np.nan, np.nan])
    assert at_proxy_scale(unknown) is unknown
