"""The shared timer: the median of a known duration, blocks sized from one call, never fewer than three blocks."""

import time

import pytest

from workbench import stopwatch


class Sleeper:
    """A callable that sleeps `seconds` and counts its calls."""

    def __init__(self, seconds):
        self.seconds, self.calls = seconds, 0

    def __call__(self):
        self.calls += 1
        time.sleep(self.seconds)


def test_the_median_of_a_known_duration():
    ms = stopwatch.median_ms(Sleeper(0.002), min_run_time=0.05)
    assert 2.0 <= ms < 4.0  # sleep overshoots a little, never undershoots


def test_a_call_longer_than_a_block_runs_three_blocks_of_one_call_after_two_warm_ups():
    fn = Sleeper(0.02)
    stopwatch.median_ms(fn, min_run_time=0.01)
    assert fn.calls == 2 + stopwatch.MIN_BLOCKS


def test_short_calls_fill_about_min_run_time_in_blocks_sized_once():
    fn = Sleeper(0.001)
    stopwatch.median_ms(fn, min_run_time=0.05, blocks=10)
    # 10 blocks of at most 0.005 s / 0.001 s = 5 calls (sleep overshoot makes blocks smaller, never larger)
    assert 2 + 10 <= fn.calls <= 2 + 10 * 5 + 5


def test_arguments_are_passed_and_bad_settings_refused():
    seen = []
    stopwatch.median_ms(lambda a, b: seen.append((a, b)), 1, 2, min_run_time=0.001)
    assert seen and set(seen) == {(1, 2)}
    with pytest.raises(ValueError, match="min_run_time > 0"):
        stopwatch.median_ms(lambda: None, min_run_time=0)
