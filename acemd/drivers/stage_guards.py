"""The [guards] (:class:`acemd.guards.Guards`) on the stages of a staged driver.

:class:`GuardedIntegrator` stands in for a stage's integrator: its ``step`` is
``Guards.step``, so every loop that drives an integrator (NPT blocks, the spring NVT
stage, switches, sweeps) is guarded without knowing it.  The Guards are built at the
first step, when the stage has set its Hamiltonian (lambda) and computed forces, so the
drift reference is that stage's.  A trip puts the state back at the last good check and
raises :class:`GuardStop`.
"""
from __future__ import annotations

from ..guards import GuardError, Guards


class GuardStop(Exception):
    """A blow-up guard tripped in ``stage``; the state is the last good one."""

    def __init__(self, stage, message):
        super().__init__(message)
        self.stage, self.message = stage, message


class GuardedIntegrator:
    """``integrator`` with the guards of ``settings`` (a dict as :class:`Guards` takes) on ``stage``."""

    def __init__(self, integrator, settings, comm, stage, advice=None):
        self.integrator, self.settings, self.comm, self.stage = integrator, settings, comm, stage
        self.advice = advice              # the stop message's last sentence (default: Guards')
        self.guards = None

    def step(self, engine):
        if self.guards is None:
            try:
                self.guards = Guards(self.settings, self.comm, engine, self.integrator,
                                     **({"advice": self.advice} if self.advice else {}))
            except GuardError as exc:         # the stage starts from a state that already fails
                raise GuardStop(self.stage, f"blow-up guard: {exc}") from None
        if self.guards.step(self.integrator, engine):
            raise GuardStop(self.stage, self.guards.message)

    def __getattr__(self, name):
        return getattr(self.integrator, name)

    def __setattr__(self, name, value):
        if name in ("integrator", "settings", "comm", "stage", "guards", "advice"):
            object.__setattr__(self, name, value)
        else:
            setattr(self.integrator, name, value)
