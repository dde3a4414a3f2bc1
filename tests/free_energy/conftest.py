"""The driver tests that interrupt a run send SIGUSR1 to this process; acemd.signals
remembers it process-wide (so that a signal before the run loop is honoured), which
would stop every later run in the same pytest process at its first check.  Forget it
after each test."""
import pytest

from acemd import signals


@pytest.fixture(autouse=True)
def _forget_stop_signals():
    yield
    signals._received = 0
