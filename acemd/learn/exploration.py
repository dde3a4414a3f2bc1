"""Exploration: an acemd MD run with the iteration's potential that dumps extrapolative frames.

Each ``[[learn.explore]]`` entry becomes an ordinary acemd input (``explore.toml`` in its folder):
its own sections, plus ``[potential]`` (the iteration's B-basis ``.yaml``), ``[extrapolation]``
(the iteration's active set; frames above ``gamma_lower`` dumped, the run stopped above
``gamma_upper``, gamma evaluated every ``gamma_every`` steps) and the outputs in its folder
(thermo log with one row per evaluation, so its MaxGamma column is the gamma history; checkpoint).
The run goes through acemd's own preflight and MD driver, in this process: a SIGTERM stops it with
its checkpoint, and the loop continues it with ``--restart`` semantics.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["exploration_text", "check_explorations", "run_exploration", "ExplorationResult", "ExplorationError"]


class ExplorationError(ValueError):
    """An exploration input is invalid (found before any labelling)."""


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "inf" if v == math.inf else "-inf" if v == -math.inf else repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {v!r} to TOML")


def to_toml(sections: dict) -> str:
    lines = []
    for name, table in sections.items():
        lines.append(f"[{name}]")
        for k, v in table.items():
            lines.append(f"{k} = {_toml_value(v)}")
        lines.append("")
    return "\n".join(lines)


def exploration_sections(exploration, potential, active_set, folder: Path, settings) -> dict:
    """The acemd input of one exploration (a dict of sections)."""
    sec = {k: dict(v) for k, v in exploration.sections.items()}
    sec["potential"] = {"file": str(potential)}
    sec["extrapolation"] = {"active_set": str(active_set), "every": settings.gamma_every,
                            "dump_threshold": settings.gamma_lower, "stop_threshold": settings.gamma_upper,
                            "dump_file": str(folder / "extrapolative.extxyz")}
    sec["thermo"] = {"every": settings.gamma_every, "file": str(folder / "explore.log")}
    sec["checkpoint"] = {"file": str(folder / "checkpoint.h5"), "every": 0}
    sec["trajectory"] = {"every": 0, "file": str(folder / "trajectory.h5")}
    order = ["structure", "masses", "potential", "velocities", "md", "thermostat", "barostat", "extrapolation",
             "thermo", "checkpoint", "trajectory", "guards", "parallel"]
    return {k: sec[k] for k in order if k in sec}


def exploration_text(exploration, potential, active_set, folder: Path, settings) -> str:
    head = (f"# acemd learn: exploration '{exploration.name}' (from {exploration.source}); written by the loop,\n"
            f"# rerun by hand with: acemd {folder / 'explore.toml'}\n")
    return head + to_toml(exploration_sections(exploration, potential, active_set, folder, settings))


def check_explorations(settings, elements):
    """Check every exploration as acemd would check its input, before any labelling: the schema,
    the driver, the structure (read or built), its elements against the fit's, the atom count and
    barostat geometry.  The potential and active set do not exist yet: empty stand-ins in a temporary
    folder take their place (only their existence and suffix are checked here).  Raises ExplorationError."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="acemd_learn_check_") as tmp:
        potential, active_set = Path(tmp) / "potential.yaml", Path(tmp) / "potential.asi"
        potential.write_text("")
        active_set.write_text("")
        for e in settings.explorations:
            _check_one(settings, e, potential, active_set, elements)


def _check_one(settings, e, potential, active_set, elements):
    from ..config import ConfigError, parse_config
    from ..io.structure import load_structure
    from ..simulation import check_structure, driver_section
    folder = settings.folder / "check" / e.name
    text = exploration_text(e, potential, active_set, folder, settings)
    where = f"{settings.source}: [[learn.explore]] '{e.name}'"
    try:
        cfg = parse_config(text, folder / "explore.toml")
    except ConfigError as exc:
        key = f"[{exc.key}] " if exc.key else ""
        raise ExplorationError(f"{where}: {key}{exc.problem}") from None
    if driver_section(cfg) != "md":
        raise ExplorationError(f"{where}: explorations are MD runs ([md]); got [{driver_section(cfg)}]")
    try:
        atoms = load_structure(cfg["structure"], settings.source.parent)
        check_structure(cfg, len(atoms), atoms.pbc, folder / "explore.toml")
    except Exception as exc:  # noqa: BLE001 - StructureError, InputError: say which exploration
        raise ExplorationError(f"{where}: {exc}") from None
    missing = sorted(set(atoms.get_chemical_symbols()) - set(elements))
    if missing:
        raise ExplorationError(f"{where}: the structure contains {', '.join(missing)}, which the fitted "
                               f"potential will not describe (potential.elements: {', '.join(elements)})")


@dataclass
class ExplorationResult:
    """What one exploration did: steps done of steps asked, why it stopped, its gamma history."""

    name: str
    steps: int
    steps_asked: int
    stopped_by: str | None
    max_gamma: float
    gamma_history: list          # (step, max gamma) per evaluation
    frames_dumped: int
    wall_s: float
    message: str = ""

    def as_dict(self) -> dict:
        g = np.array([x[1] for x in self.gamma_history]) if self.gamma_history else np.zeros(0)
        q = (np.percentile(g, [50, 90]).tolist() if g.size else [math.nan, math.nan])
        return {"name": self.name, "steps": self.steps, "steps_asked": self.steps_asked,
                "fraction_done": self.steps / self.steps_asked if self.steps_asked else 1.0,
                "stopped_by": self.stopped_by, "max_gamma": self.max_gamma,
                "gamma_median": q[0], "gamma_p90": q[1], "evaluations": int(g.size),
                "frames_dumped": self.frames_dumped, "wall_s": self.wall_s, "message": self.message,
                "gamma_history": [[int(s), float(v)] for s, v in self.gamma_history]}


def _gamma_history(log_path: Path) -> list:
    """(step, MaxGamma) of every row of the exploration's thermo log."""
    if not log_path.exists():
        return []
    rows, cols = [], None
    for line in log_path.read_text().splitlines():
        if line.startswith("#"):
            parts = line[1:].split()
            if "Step" in parts and "MaxGamma" in parts:
                cols = (parts.index("Step"), parts.index("MaxGamma"))
            continue
        if cols is None or not line.strip():
            continue
        parts = line.split()
        try:
            rows.append((int(parts[cols[0]]), float(parts[cols[1]])))
        except (ValueError, IndexError):
            continue
    seen = {}
    for s, g in rows:             # a restarted run may repeat its last row
        seen[s] = g
    return sorted(seen.items())


def _count_frames(path: Path) -> int:
    from .structures import read_frames
    return len(read_frames(path))


def run_exploration(exploration, potential, active_set, folder: Path, settings, restart: bool) -> ExplorationResult:
    """Run (or continue, ``restart``) one exploration in ``folder``; returns its result.

    A SIGTERM/SIGUSR1 during the run gives ``stopped_by`` "SIGTERM"/"SIGUSR1" with the checkpoint
    written; the caller saves its state and exits 75."""
    import io

    from mpi4py import MPI

    from ..config import parse_config
    from ..drivers.md import MDRun
    from ..preflight import preflight
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "explore.toml"
    text = exploration_text(exploration, potential, active_set, folder, settings)
    if not restart or not path.exists():
        path.write_text(text)
    cfg = parse_config(text, path)
    ckpt = folder / "checkpoint.h5"
    restart_file = str(ckpt) if (restart and ckpt.exists()) else None
    if restart_file is None:            # a fresh start: nothing of an earlier attempt is appended to
        for name in ("explore.log", "extrapolative.extxyz", "checkpoint.h5"):
            (folder / name).unlink(missing_ok=True)
    comm = MPI.COMM_SELF
    sink = io.StringIO()
    lock = preflight(cfg, str(path), comm, restart=restart_file, stream=sink)
    try:
        run = MDRun(cfg, text, str(path), comm=comm, restart=restart_file, stream=sink)
        summary = run.run()
    finally:
        if lock is not None:
            lock.release()
    history = _gamma_history(folder / "explore.log")
    max_g = max((g for _, g in history), default=float(summary.get("max_gamma") or 0.0))
    return ExplorationResult(name=exploration.name, steps=int(summary["steps"]), steps_asked=int(cfg["md"]["steps"]),
                             stopped_by=summary.get("stopped_by"), max_gamma=float(max_g),
                             gamma_history=history, frames_dumped=_count_frames(folder / "extrapolative.extxyz"),
                             wall_s=float(summary.get("wall_s", 0.0)), message=summary.get("message", ""))
