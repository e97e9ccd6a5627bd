"""The garbage collector held off during imports and re-judges (monitoring/gc_pause.py):
off inside, as it was once every user has left, whatever the order they leave in."""

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
    entered, leave = threading.Event(), threading.Event()

    def other():
        with gc_pause.collector_paused():
            entered.set()
            leave.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    entered.wait(5)  # the other thread paused it first
    with gc_pause.collector_paused():
        leave.set()
        thread.join(5)
        assert not thread.is_alive()
        assert not gc.isenabled()  # the first to pause has left; this one has not
    assert gc.isenabled()
