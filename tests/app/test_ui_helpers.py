"""Small UI helpers: typed bounds, page words for CLI flags, palettes, human numbers, note counts."""

from __future__ import annotations

import pytest

from app.ui.bounds import parse_bounds
from app.ui.errors import page_words
from app.ui.style import note_count, notes_markdown, number, palette, share, tokens
from engine.errors import InputError


def test_typed_bounds():
    lower, upper, fixed = parse_bounds("github >= 0.05, web<=0.4 , code = 0.1", ["github", "web", "code"])
    assert (lower, upper, fixed) == ({"github": 0.05}, {"web": 0.4}, {"code": 0.1})
    assert parse_bounds("", ["a"]) == ({}, {}, {})
    with pytest.raises(InputError, match="bound 2 'web > 0.4'"):
        parse_bounds("github >= 0.05, web > 0.4", ["github", "web"])
    with pytest.raises(InputError, match="no domain named 'gitub'"):
        parse_bounds("gitub >= 0.05", ["github"])
    with pytest.raises(InputError, match="not between 0 and 1"):
        parse_bounds("github >= 5", ["github"])


def test_page_words_name_fields_not_flags():
    text = page_words("the upper bounds allow at most 0.3. Fix: raise --max-epochs, or lower --budget; --min web=0.5")
    assert "--" not in text
    assert "the 'Epoch cap per domain' field" in text and "the 'Token budget' field" in text
    assert "the 'min' column" in text
    assert page_words("--max-epochs-x stays") == "--max-epochs-x stays"


def test_palette_distinct_at_64_domains():
    assert len(set(palette(17))) == 17 and len(set(palette(64))) == 64


def test_numbers_for_people():
    assert tokens(2.5e10) == "25B" and tokens(None) == "unknown"
    assert number(0.13700000001) == "0.137" and number(float("nan")) == "-"
    assert share(0.0012) == "0.12%" and share(0.25) == "25.0%"


def test_upload_note_count_counts_summarised_notes():
    notes = [f"runs.csv line {i}: shares summed to 0.99, renormalised" for i in range(20)]
    assert note_count(notes + ["... and 283 more renormalised notes"]) == 303


def test_plan_notes_are_one_list_with_names_escaped():
    text = notes_markdown(["prior: R* = 15.4", "domain ![x](http://host/t.png) reaches its cap"])
    assert text.splitlines() == ["- prior\\: R\\* = 15.4", "- domain \\!\\[x\\](http\\://host/t.png) reaches its cap"]


def test_mixture_bars_are_stacked_before_the_browser_sees_them():
    from app.ui.charts import OTHER, mixture_chart, mixture_frame

    mixtures = [{"web": 0.5, "code": 0.3, "books": 0.2}, {"web": 0.1, "code": 0.8, "books": 0.1},
                {"web": 0.7, "code": 0.0, "books": 0.3}]
    frame = mixture_frame(["r2", "r0", "r1"], mixtures, top_n=2)  # books is summed as 'other'
    chart = mixture_chart(frame, sort_label="as listed")
    data = chart.data
    assert set(data["domain"]) == {"web", "code", OTHER}
    for run, rows in data.groupby("run"):
        rows = rows.sort_values("bottom")
        assert rows["bottom"].iloc[0] == 0 and abs(rows["top"].iloc[-1] - 1) < 1e-12  # each bar fills 0..1
        assert (rows["bottom"].iloc[1:].to_numpy() == rows["top"].iloc[:-1].to_numpy()).all()  # no gaps or overlaps
        assert ((rows["top"] - rows["bottom"]) - rows["share"]).abs().max() < 1e-12
    spec = chart.to_dict()
    assert spec["encoding"]["x"]["sort"] == ["r2", "r0", "r1"]  # the runs' order, not a sort by field
    assert "stack" not in str(spec["encoding"]["y"]) and "aggregate" not in str(spec["encoding"]["y"])


def test_the_laws_are_imported_in_the_background_once_a_session_starts():
    """The first opening of Fit or Plan must not wait ~1 s on PyTorch, LightGBM and scikit-learn imports."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys\n"
            "from app.ui.warmup import HEAVY, warm_imports\n"
            "assert 'lightgbm' not in sys.modules and 'engine.laws.registry' not in sys.modules\n"
            "thread = warm_imports()\n"
            "assert warm_imports() is thread  # once per server process\n"
            "thread.join(300)\n"
            "missing = [name for name in HEAVY if name not in sys.modules]\n"
            "assert not thread.is_alive() and not missing and 'lightgbm' in sys.modules, missing\n")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def test_curve_runs_are_runs_with_two_or_more_checkpoints_of_a_target():
    import math

    import pandas as pd

    from app.ui.charts import curve_runs

    curves = pd.DataFrame({"run": ["a", "a", "a", "b", "b", "c", "c"],
                           "target": ["x", "x", "y", "x", "x", "y", "y"],
                           "tokens_seen": [1, 2, 1, 1, math.nan, 1, 2], "value": [1.0] * 7})
    assert curve_runs(curves) == {"x": {"a"}, "y": {"c"}}  # b's second value has no token count
    assert curve_runs(curves.iloc[:0]) == {}
