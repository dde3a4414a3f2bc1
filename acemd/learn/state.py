"""The loop's state file (``learn_state.json`` in the work folder): where the loop is, what it did.

Written atomically after every step that must not be repeated (a structure labelled, the fit of an
iteration, one exploration run, the selection), so a loop stopped by a signal (or killed) continues
from its last completed step with ``acemd learn input.toml --restart``.  ``signature`` is the hash
of the input's settings (all but ``max_iterations``): a restart with another input is refused.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["LearnState", "STATE_FILE", "STAGES", "StateError"]

STATE_FILE = "learn_state.json"
STAGES = ("label", "fit", "explore", "select", "done")
TIMED = ("explore", "select", "label", "fit", "other")


class StateError(ValueError):
    """The state file is missing, damaged, or belongs to another input."""


@dataclass
class LearnState:
    signature: str
    iteration: int = 0
    stage: str = "label"
    explored: list = field(default_factory=list)        # exploration results of this iteration (dicts)
    fit: dict = field(default_factory=dict)              # this iteration's fit result
    label: dict = field(default_factory=dict)            # this iteration's labelling summary
    history: list = field(default_factory=list)          # one record per finished iteration
    times_s: dict = field(default_factory=lambda: {k: 0.0 for k in TIMED})
    converged: bool = False
    stop_reason: str = ""

    @staticmethod
    def path(folder) -> Path:
        return Path(folder) / STATE_FILE

    def save(self, folder):
        p = self.path(folder)
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1, default=float))
        os.replace(tmp, p)

    @classmethod
    def load(cls, folder, signature: str, input_path) -> "LearnState":
        p = cls.path(folder)
        if not p.exists():
            raise StateError(f"--restart: {p} not found: this folder holds no learning run to continue; "
                             f"start one with: acemd learn {input_path}")
        try:
            data = json.loads(p.read_text())
            state = cls(**data)
        except (ValueError, TypeError) as exc:
            raise StateError(f"--restart: {p} is damaged ({exc}); start a new run in another [learn].folder") from None
        if state.stage not in STAGES:
            raise StateError(f"--restart: {p}: unknown stage {state.stage!r}")
        if state.signature != signature:
            raise StateError(f"--restart: {input_path} is not the input this run was started with (its settings "
                             f"differ; only max_iterations may change); restore it, or start anew in another "
                             f"[learn].folder")
        return state
