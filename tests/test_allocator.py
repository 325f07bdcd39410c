"""The malloc settings reach the processes that train, under any value the user set."""

import os

from workbench import allocator
from workbench.runner.sweep import executor_for


def test_children_get_the_settings_and_a_users_own_value_wins():
    env = allocator.child_environment({"MALLOC_TOP_PAD_": "0"})
    assert env == {**allocator.SETTINGS, "MALLOC_TOP_PAD_": "0"}


def test_dask_workers_start_with_the_settings(monkeypatch):
    for key in allocator.SETTINGS:
        monkeypatch.delenv(key, raising=False)
    executor = executor_for("local", 1, 1)
    with executor:
        got = {key: list(executor.client.run(os.environ.get, key).values()) for key in allocator.SETTINGS}
    assert got == {key: [value] for key, value in allocator.SETTINGS.items()}  # one worker
