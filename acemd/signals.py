"""Stop requests by signal: SIGTERM and SIGUSR1 (what SLURM sends before the wall time).

A signal may arrive at any time after the process starts, also while Python imports numpy
or while ``MPI_Init`` runs (the ``mpich`` wheel's ``MPI_Init`` installs C-level handlers for
SIGUSR1 and SIGHUP, which swallow a USR1 that has no earlier handler to chain to).  So the
command line installs a process-wide handler first thing (:func:`install_early`), again right
after ``MPI_Init`` (:func:`reinstall_after_mpi_init`), and every :class:`StopRequested` the run
loop creates starts from the signal already received.
"""
from __future__ import annotations

import signal

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

_received = 0          # the last stop signal this process received since install_early()
_early_old: dict = {}  # the handlers install_early() replaced


def _record(signum, frame):
    global _received
    _received = signum


def received() -> int:
    """The stop signal received since :func:`install_early` (0 if none)."""
    return _received


def install_early():
    """Record SIGTERM/SIGUSR1 process-wide (instead of dying, the default action)."""
    for sig in STOP_SIGNALS:
        try:
            old = signal.signal(sig, _record)
        except ValueError:          # not in the main thread: leave the signals alone
            continue
        _early_old.setdefault(sig, old)


def reinstall_after_mpi_init():
    """Take SIGUSR1 back from MPI_Init's C handler (and SIGTERM, should an MPI take that too)."""
    if _early_old:
        for sig in STOP_SIGNALS:
            try:
                signal.signal(sig, _record)
            except ValueError:
                pass


def ignore_until_exit():
    """Ignore SIGTERM/SIGUSR1 once the run's outcome is decided.

    At interpreter exit Python resets its handled signals to the default action (terminate)
    before mpi4py's MPI_Finalize runs, which waits for the other ranks: a warning signal then
    would turn a finished or checkpointed run into "killed by SIGUSR1".  Ignored signals are
    left ignored."""
    for sig in STOP_SIGNALS:
        try:
            signal.signal(sig, signal.SIG_IGN)
        except ValueError:
            pass


def uninstall_early():
    """Restore what :func:`install_early` replaced and forget the received signal."""
    global _received
    for sig, old in _early_old.items():
        try:
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        except ValueError:
            pass
    _early_old.clear()
    _received = 0


class StopRequested:
    """Remembers SIGTERM/SIGUSR1 while installed; ``signum`` is the last one (0: none).

    Starts from the signal the process-wide handler already recorded, so a signal that came
    before the run loop began is honoured at the first step."""

    def __init__(self):
        global _received
        self.signum = _received      # a signal that came before this run loop is this run's
        _received = 0
        self._old = {}

    def install(self):
        for sig in STOP_SIGNALS:
            try:
                self._old[sig] = signal.signal(sig, self._handler)
            except ValueError:      # not in the main thread
                pass

    def uninstall(self):
        global _received
        for sig, old in self._old.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        self._old = {}
        _received = 0                # handled by this run: a later run in the process starts clean

    def _handler(self, signum, frame):
        self.signum = signum
        _record(signum, frame)
