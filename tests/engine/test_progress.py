from engine.progress import Cancelled, ProgressEvent, report, scaled

import pytest


def test_report_sends_one_event_and_is_a_no_op_without_callback():
    seen = []
    report(seen.append, "fit", 2, 4, "gp")
    report(None, "fit", 3, 4)
    assert seen == [ProgressEvent("fit", 2, 4, "gp")]
    assert seen[0].fraction == 0.5


def test_scaled_maps_a_sub_task_into_its_share_of_the_parent():
    seen = []
    child = scaled(seen.append, 0.5, 1.0, total=100)
    report(child, "plan", 1, 2)
    assert seen[-1].done == 75 and seen[-1].total == 100
    assert scaled(None, 0, 1) is None


def test_a_callback_can_cancel_the_work():
    def cancel(event):
        raise Cancelled

    with pytest.raises(Cancelled):
        report(cancel, "fit", 0, 1)
