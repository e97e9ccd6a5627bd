"""The garbage collector held off during bulk work (monitoring/gc_pause.py): off inside,
as it was once every user has left, and objects frozen around a fork only meanwhile."""

from __future__ import annotations

import gc
import threading

import pytest

from monitoring import gc_pause


@pytest.fixture
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    (gc.enable if was else gc.disable)()


def test_the_collector_is_off_inside_and_back_on_after(collector_on):
    with gc_pause.collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_nested_pauses_resume_only_when_the_outermost_leaves(collector_on):
    with gc_pause.collector_paused():
        with gc_pause.collector_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_exception_still_resumes_the_collector(collector_on):
    with pytest.raises(ValueError), gc_pause.collector_paused():
        raise ValueError("inside")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off(collector_on):
    gc.disable()
    with gc_pause.collector_paused():
        pass
    assert not gc.isenabled()


def test_another_thread_leaving_first_does_not_resume_it_under_this_one(collector_on):
    inside, leave = threading.Event(), threading.Event()

    def other():
        with gc_pause.collector_paused():
            inside.set()
            leave.wait(5)

    thread = threading.Thread(target=other)
    with gc_pause.collector_paused():
        thread.start()
        inside.wait(5)
        leave.set()
        thread.join(5)
        assert not gc.isenabled()  # the other thread left; this one has not
    assert gc.isenabled()


def test_objects_are_frozen_inside_and_thawed_after():
    assert gc.get_freeze_count() == 0
    kept = [object() for _ in range(10)]
    with gc_pause.frozen_for_fork():
        assert gc.get_freeze_count() >= len(kept)
    assert gc.get_freeze_count() == 0


def test_objects_someone_else_froze_stay_frozen():
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        with gc_pause.frozen_for_fork():
            pass
        assert gc.get_freeze_count() >= before > 0
    finally:
        gc.unfreeze()
