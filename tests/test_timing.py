"""The expected run time: measured on the run's own first steps, announced once."""

from __future__ import annotations

import io
import logging

import pytest

from dldna import timing
from dldna.params import ParameterError
from dldna.timing import ExpectedRunTime, format_duration


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def announcements(monkeypatch):
    """The lines the ``dldna.timing`` logger announces, whatever handlers it has."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    monkeypatch.setattr(timing.logger, "level", logging.INFO)
    timing.logger.addHandler(handler)
    yield lambda: [line for line in stream.getvalue().splitlines() if line]
    timing.logger.removeHandler(handler)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(3.25, "3.2 s"), (45, "45 s"), (200, "3 min 20 s"), (7300, "2 h 02 min")],
)
def test_durations_read_like_a_clock(seconds, text):
    assert format_duration(seconds) == text


def test_the_warm_up_step_is_left_out_and_the_rest_extrapolated(monkeypatch, announcements):
    clock = Clock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    eta = ExpectedRunTime(1000, "demo", warmup_steps=1, probe_steps=4, fixed_seconds=10)
    for step_seconds in (50.0, 2.0, 2.0, 3.0, 1.0, 99.0):  # a slow first step, then ~2 s
        clock.now += step_seconds
        eta.tick()
    assert eta.seconds_per_step == pytest.approx(2.0)
    assert eta.expected_seconds == pytest.approx(1000 * 2.0 + 10)
    assert announcements() == [
        "Expected time for demo: about 33 min 30 s (1000 steps x 2 s, measured over steps 2-5)."
    ]


def test_a_run_shorter_than_the_probe_announces_nothing(announcements):
    eta = ExpectedRunTime(3, "demo", probe_steps=3)
    for _ in range(3):
        eta.tick()
    assert not eta.announced and announcements() == []


@pytest.mark.parametrize(("name", "value"), [("total_steps", -1), ("warmup_steps", 0), ("probe_steps", 0)])
def test_bad_settings_are_named(name, value):
    with pytest.raises(ParameterError, match=f"{name} = {value}"):
        ExpectedRunTime(**{"total_steps": 10, name: value})


def test_the_announcement_reaches_a_notebook_without_logging_set_up(capsys, monkeypatch):
    monkeypatch.setattr(timing, "_notebook_handler", None)
    monkeypatch.setattr(timing.logger, "handlers", [])
    monkeypatch.setattr(timing.logger, "propagate", True)
    timing.show_in_notebook()
    timing.show_in_notebook()  # once only
    assert len(timing.logger.handlers) == 1
    clock_steps = ExpectedRunTime(10, "demo", probe_steps=1)
    clock_steps.tick()
    clock_steps.tick()
    assert capsys.readouterr().out.count("Expected time for demo") == 1
