"""Restarts: which checkpoint a run continues, what it takes from another driver's, how to continue.

A run continues its own checkpoint in place (``[checkpoint].file``, or
``[free_energy].checkpoint`` for the free-energy protocols; it is replaced
atomically).  :func:`check_restart` (called by the preflight, also under
``--check``) compares a ``--restart`` file with the input before any work: the
system, the driver that wrote it (:func:`foreign_restart_note`: another driver's
checkpoint is a start, said before the run, or refused by the protocols that
continue only their own), the free-energy protocol, and for ``[md]`` the outputs
it would append to.  :func:`restart_command` is what a stopped run prints.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .preflight import PreflightError, _driver, _key, _same

CELL_LENGTH_TOLERANCE = 0.3         # restart cell lengths may differ from [structure]'s by 30 %


def own_checkpoint(settings) -> str:
    """The checkpoint this run writes and continues from (the [free_energy] protocols keep their own)."""
    return settings["free_energy"]["checkpoint"] if settings.get("free_energy") else settings["checkpoint"]["file"]


def restart_command(settings, input_path, since=None, restart=None) -> str:
    """How to continue a stopped run, naming only a checkpoint of this run: written after ``since``
    (a time.time()), or the ``restart`` file itself still (a stop before the next checkpoint)."""
    ckpt = own_checkpoint(settings)
    p = Path(ckpt)
    fresh = p.is_file() and (since is None or p.stat().st_mtime >= since
                             or (restart is not None and _same(p, restart)))
    if not fresh:
        return f"no checkpoint was written yet ({ckpt}): start again with: acemd {input_path}"
    return f"to continue: acemd {input_path} --restart {ckpt}"


def check_restart(settings, input_path, restart):
    """Read the checkpoint and compare it with the input; raise PreflightError naming what differs."""
    from .io.checkpoint import read_checkpoint
    from .io.structure import load_structure
    from .potential import load_potential
    data = read_checkpoint(restart)                 # CheckpointError for damaged / NaN content
    names = list(data["species_names"])
    pot = load_potential(settings["potential"]["file"])
    if names != list(pot.elements):
        raise PreflightError(f"--restart {restart}: checkpoint species {names} differ from the potential "
                             f"{pot.source}'s {list(pot.elements)}; restart with the potential the "
                             "checkpoint was written with")
    spec = dict(settings["structure"])
    if "rattle_seed" in spec:
        spec["seed"] = spec.pop("rattle_seed")
    atoms = load_structure(spec, Path(input_path).resolve().parent)
    have = _formula(names, data["species"])
    want = _formula_of(atoms.get_chemical_symbols())
    if len(data["ids"]) != len(atoms) or have != want:
        raise PreflightError(f"--restart {restart}: the checkpoint holds {len(data['ids'])} atoms ({have}) but "
                             f"[structure] of {input_path} has {len(atoms)} ({want}): it is the checkpoint of "
                             "another system; restart with this input's own checkpoint or start anew "
                             "without --restart")
    if not np.array_equal(np.asarray(data["pbc"], bool), np.asarray(atoms.pbc, bool)):
        raise PreflightError(f"--restart {restart}: the checkpoint is periodic along {data['pbc'].tolist()}, "
                             f"[structure] of {input_path} along {atoms.pbc.tolist()}; use the matching "
                             "checkpoint or input")
    lengths_ck = np.linalg.norm(data["cell"], axis=1)
    lengths_in = np.linalg.norm(atoms.cell.array, axis=1)
    for d in range(3):
        if atoms.pbc[d] and abs(lengths_ck[d] / lengths_in[d] - 1.0) > CELL_LENGTH_TOLERANCE:
            raise PreflightError(f"--restart {restart}: cell vector {'abc'[d]} is {lengths_ck[d]:.4g} Å in the "
                                 f"checkpoint and {lengths_in[d]:.4g} Å in [structure] of {input_path} (more "
                                 f"than {CELL_LENGTH_TOLERANCE:.0%} apart): it is the checkpoint of another "
                                 "system; restart with this input's own checkpoint")
    note = foreign_restart_note(settings, restart, data, Path(input_path).read_text())
    if note:
        print(f"# {note}", flush=True)
    if not settings.get("md") or note:  # other drivers (and a new MD run) start from the checkpoint's atoms
        return data
    check_appended_outputs(settings, input_path, restart, data)
    step, steps = data["step"], settings["md"]["steps"]
    if step >= steps:
        state = "already complete" if step == steps else "already past the end"
        raise PreflightError(f"--restart {restart}: the checkpoint is at step {step} and {input_path} asks "
                             f"for [md.steps] = {steps} (the total, counted from step 0): the run is {state}; "
                             "raise [md.steps] to run longer")
    return data


def continues_own_checkpoint_only(settings) -> bool:
    """Protocols whose --restart continues a stage (free energy, elastic at T > 0): no other start."""
    return bool(settings.get("free_energy")) or bool(settings.get("elastic")
                                                     and settings["elastic"]["temperature"] > 0.0)


def foreign_restart_note(settings, restart, data, input_text="") -> str | None:
    """What a run takes from a checkpoint another driver wrote (None: its own checkpoint, continued).

    [md], [minimize] and 0 K [elastic] start anew from its atoms and cell; the protocols that continue
    a stage refuse it (PreflightError): appending to another run's outputs is never done."""
    from .io.checkpoint import writer_of
    driver = _driver(settings)
    writer = writer_of(data["state"])
    if writer == driver:
        if driver == "free_energy":
            check_free_energy_protocol(settings, restart, data["state"]["free_energy"])
        return None
    what = f"--restart {restart}: a [{writer}] checkpoint" if writer else \
        f"--restart {restart}: a checkpoint of unknown origin (no driver state)"
    if continues_own_checkpoint_only(settings):
        raise PreflightError(f"{what} (step {data['step']}), but [{driver}] continues only its own "
                             f"checkpoint (a protocol stage); start without --restart, or restart with the "
                             f"checkpoint this input wrote")
    if driver == "md":
        vel = ("velocities drawn from [velocities]" if input_has_section(input_text, "velocities")
               else "its velocities" if np.any(data["velocities"]) else
               "its velocities, all zero: the run starts at 0 K (give [velocities] to draw them)")
        return (f"{what} (step {data['step']}): [md] takes its atoms, cell and {vel}, and starts a new run "
                "at step 0 (log and trajectory written anew, not appended)")
    return (f"{what} (step {data['step']}): [{driver}] takes its atoms and cell (velocities and step "
            "unused)")


def check_free_energy_protocol(settings, restart, saved):
    """The protocol of a [free_energy] checkpoint must be this input's (the driver's own test, made
    here too so that --check finds it and the run stops before its set-up)."""
    import json

    from .drivers.free_energy import RESUMABLE_KEYS
    sec = settings["free_energy"]
    signature = json.dumps({k: v for k, v in sorted(sec.items()) if k not in RESUMABLE_KEYS}, sort_keys=True,
                           default=str)
    if saved.get("signature") is None or saved.get("guard_stop"):
        return                                      # the driver says what is wrong with these
    if saved["signature"] != signature:
        theirs = json.loads(saved["signature"])
        mine = json.loads(signature)
        changed = sorted(k for k in set(theirs) | set(mine) if theirs.get(k) != mine.get(k))
        raise PreflightError(f"--restart {restart}: [free_energy] {', '.join(changed)} differ from the run that "
                             "wrote the checkpoint; restart with the same protocol settings (only report, data, "
                             "checkpoint and progress_every may change)")


APPENDED_OUTPUTS = (("thermo", "file"), ("trajectory", "file"))     # what an [md] restart appends to


def check_appended_outputs(settings, input_path, restart, data):
    """An [md] restart appends to its log and trajectory: refuse when such a file exists but is not
    the one the run that wrote the checkpoint wrote (its input names other outputs: e.g. an NVT
    checkpoint continued by an NVE input whose log holds an unrelated earlier run)."""
    from .config import parse_config
    try:
        theirs = parse_config(data.get("input_text") or "", input_path)
    except Exception:  # noqa: BLE001 - an input of an older acemd, or none: nothing to compare with
        return
    if not theirs.get("md"):
        return
    for section, key in APPENDED_OUTPUTS:
        if section == "trajectory" and settings["trajectory"]["every"] <= 0:
            continue
        mine, other = Path(settings[section][key]), Path(theirs[section][key])
        if mine.exists() and not _same(mine, other):
            raise PreflightError(f"--restart {restart}: the run that wrote this checkpoint (step {data['step']}) "
                                 f"wrote {other.name} ([{section}.{key}] of its input), but {_key(section, key)} = "
                                 f"{mine} of {input_path} exists and holds another run: continuing would append "
                                 f"steps after {data['step']} to it; give {_key(section, key)} a new name or move "
                                 "the old file away (nothing was written)")


def input_has_section(input_text, section) -> bool:
    """True when the input text names ``section`` (the checked settings hold every section, with defaults)."""
    import tomllib
    try:
        return section in tomllib.loads(input_text)
    except tomllib.TOMLDecodeError:
        return False


def _formula(names, species) -> str:
    counts = np.bincount(np.asarray(species, dtype=np.int64), minlength=len(names))
    return "".join(f"{el}{int(c)}" for el, c in sorted(zip(names, counts)) if c)


def _formula_of(symbols) -> str:
    els, counts = np.unique(np.asarray(symbols), return_counts=True)
    return "".join(f"{el}{int(c)}" for el, c in zip(els, counts))
