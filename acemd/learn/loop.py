"""The active-learning loop of ``acemd learn``: label -> fit -> explore -> select, until the explorations
no longer extrapolate.

Iteration k lives in ``iter_k/`` of the work folder:

- ``to_label.extxyz``: the structures to label (iteration 0: the starting set; later: the selection
  of iteration k-1), ``labels/`` one file per labelled structure, ``failed_labels.yaml`` the
  structures the labeller failed on (with the reason; skipped), ``dataset.extxyz`` the whole dataset;
- ``fit/``: the iteration's pacemaker input, the potential (``potential.yaml``, ``.yace``), its
  active set (``.asi``), metrics and ``fit.log``;
- ``explore/<name>/``: each exploration's acemd input, thermo log (MaxGamma per evaluation),
  extrapolative frames and checkpoint;
- ``selected.yaml``: the D-optimal selection (origin and gamma of each structure), whose structures
  are ``iter_{k+1}/to_label.extxyz``; ``summary.yaml``: the iteration's record.

The loop has converged when every exploration ran to its end without exceeding ``gamma_lower``; it
also ends after ``max_iterations`` fits.  The state (:mod:`acemd.learn.state`) is saved after every
labelled structure, fit, exploration and selection; a SIGTERM/SIGUSR1 is honoured between structures,
after the fit, and inside an exploration (acemd's MD checkpoint); the loop then exits with status 75
and prints the command that continues it.
"""
from __future__ import annotations

import signal as _signal
import time
from pathlib import Path

import numpy as np
import yaml

from .. import signals
from .state import LearnState, StateError

__all__ = ["run_learn", "check_learn", "LearnError", "EXIT_STOPPED"]

EXIT_STOPPED = 75


class LearnError(ValueError):
    """The loop cannot go on (e.g. the labeller failed on every structure of an iteration)."""


def _iter_dir(settings, k) -> Path:
    return settings.folder / f"iter_{k:03d}"


def check_learn(settings, say=print):
    """Everything checked before any work: the labeller built, the fit keys and basis, every
    exploration as acemd checks its input.  Returns (labeller, fit elements)."""
    from .exploration import check_explorations
    from .fitting import check_fit_settings
    from .labellers import make_labeller
    labeller = make_labeller(settings.labeller)
    elements = check_fit_settings(settings)
    check_explorations(settings, elements)
    say(f"# checked: labeller {labeller.describe()}; fit of {', '.join(elements)}; "
        f"{len(settings.explorations)} exploration(s): " + ", ".join(e.name for e in settings.explorations))
    return labeller, elements


class _Clock:
    """Wall time per stage, added to the state (so a restarted loop reports the whole cost)."""

    def __init__(self, state):
        self.state = state

    def add(self, stage, seconds):
        self.state.times_s[stage] = self.state.times_s.get(stage, 0.0) + float(seconds)


def _stop_requested() -> bool:
    return signals.received() != 0


def _start_structures(settings, d: Path):
    """Iteration 0: the starting structures, split into to_label.extxyz and given.extxyz (labelled)."""
    from .structures import generate_start, has_label, read_frames, write_frames
    if "dataset" in settings.start:
        frames = read_frames(settings.start["dataset"]) if str(settings.start["dataset"]).endswith(
            (".extxyz", ".xyz")) else _read_any(settings.start["dataset"])
        if not frames:
            raise LearnError(f"{settings.source}: [learn.start].dataset {settings.start['dataset']} holds no structures")
        given = [a for a in frames if has_label(a)]
        todo = [a for a in frames if not has_label(a)]
    else:
        given, todo = [], generate_start(settings.start)
    from .labellers import Label
    from .structures import labelled_atoms
    given = [labelled_atoms(a, Label(energy=a.get_potential_energy(), forces=a.get_forces(),
                                     stress=_stress_or_none(a)), f"start:{i}") for i, a in enumerate(given)]
    write_frames(d / "given.extxyz", given)
    for i, a in enumerate(todo):
        a.info = {"origin": f"start:{i}"}
    write_frames(d / "to_label.extxyz", todo)


def _read_any(path):
    from ase.io import read
    return read(str(path), index=":", parallel=False)


def _stress_or_none(atoms):
    try:
        return atoms.get_stress(voigt=True) if all(atoms.pbc) else None
    except Exception:  # noqa: BLE001
        return None


def _label_stage(settings, state, labeller, d: Path, say, clock) -> bool:
    """Label iter_k/to_label.extxyz (resuming after the structures already done); True when complete."""
    from .labellers import CommandLabeller, Label
    from .structures import labelled_atoms, read_frames, write_frames
    todo = read_frames(d / "to_label.extxyz")
    lab_dir = d / "labels"
    lab_dir.mkdir(exist_ok=True)
    done = {int(p.stem) for p in lab_dir.glob("*.extxyz")} | {int(p.stem) for p in lab_dir.glob("*.failed")}
    pending = [i for i in range(len(todo)) if i not in done]
    t0 = time.perf_counter()
    if pending:
        say(f"iteration {state.iteration}: labelling {len(pending)} of {len(todo)} structures "
            f"({labeller.describe()})")

    def record(j, lab):
        i = pending[j]
        if lab.error:
            _atomic(lab_dir / f"{i:05d}.failed", lab.error + "\n")
        else:
            write_frames(lab_dir / f"{i:05d}.extxyz",
                         [labelled_atoms(todo[i], lab, f"iter{state.iteration:03d}:{i}:"
                                         + str(todo[i].info.get("origin", "")))])

    structures = [todo[i] for i in pending]
    if isinstance(labeller, CommandLabeller):
        labeller.label(structures, on_done=record, stop=_stop_requested, workdir=d / "label_command")
    else:
        labeller.label(structures, on_done=record, stop=_stop_requested)
    clock.add("label", time.perf_counter() - t0)
    done = {int(p.stem) for p in lab_dir.glob("*.extxyz")} | {int(p.stem) for p in lab_dir.glob("*.failed")}
    if len(done) < len(todo):
        return False
    labelled, failed = [], []
    for i in range(len(todo)):
        f = lab_dir / f"{i:05d}.failed"
        if f.exists():
            failed.append({"index": i, "origin": str(todo[i].info.get("origin", "")),
                           "reason": f.read_text().strip()})
        else:
            labelled.extend(read_frames(lab_dir / f"{i:05d}.extxyz"))
    _atomic(d / "failed_labels.yaml", yaml.safe_dump(failed, sort_keys=False))
    for rec in failed:
        say(f"  label failed, skipped: structure {rec['index']} ({rec['origin']}): {rec['reason']}")
    if todo and not labelled:
        reasons = sorted({r["reason"] for r in failed})
        raise LearnError(f"the labeller ({labeller.describe()}) failed on all {len(todo)} structures of iteration "
                         f"{state.iteration} ({'; '.join(reasons[:3])}); see {d / 'failed_labels.yaml'}; nothing was "
                         "fitted: fix [learn.labeller] and start again (remove the folder or choose another "
                         "[learn].folder)")
    previous = (read_frames(_iter_dir(settings, state.iteration - 1) / "dataset.extxyz")
                if state.iteration > 0 else read_frames(d / "given.extxyz"))
    dataset = previous + labelled
    if not dataset:
        raise LearnError("the dataset is empty: nothing to fit")
    write_frames(d / "dataset.extxyz", dataset)
    state.label = {"to_label": len(todo), "labelled": len(labelled), "failed": len(failed),
                   "dataset_structures": len(dataset), "dataset_atoms": int(sum(len(a) for a in dataset))}
    say(f"  labelled {len(labelled)}, failed {len(failed)}; dataset {len(dataset)} structures "
        f"({state.label['dataset_atoms']} atoms)")
    return True


def _atomic(path, text):
    from .structures import atomic_write_text
    atomic_write_text(path, text)


def _fit_stage(settings, state, d: Path, say, clock) -> bool:
    """The iteration's fit; False when a signal stopped it (a nonlinear fit, after its checkpoint)."""
    from .fitting import run_iteration_fit
    t0 = time.perf_counter()
    previous = (Path(state.history[-1]["potential"]) if state.history and state.history[-1].get("potential")
                else None)
    fit = run_iteration_fit(settings, d / "dataset.extxyz", d / "fit", previous)
    clock.add("fit", time.perf_counter() - t0)
    if fit is None:
        state.stop_reason = "a signal (the fit wrote its checkpoint)"
        return False
    state.fit = fit
    e = state.fit["errors"]
    parts = []
    for subset in ("train", "test"):
        if subset in e:
            parts.append(f"{subset} {e[subset]['energy_rmse_meV_per_atom']:.2f} meV/atom, "
                         f"{e[subset]['force_rmse_meV_per_A']:.1f} meV/Å")
    say(f"  fit: {e.get('basis_functions')} functions; " + "; ".join(parts)
        + f"; active set {state.fit['active_set_sizes']} ({time.perf_counter() - t0:.1f} s)")
    return True


def _explore_stage(settings, state, d: Path, say, clock) -> bool:
    """Run the explorations not done yet; False when a signal stopped one (its checkpoint written)."""
    from .exploration import run_exploration
    done = {r["name"] for r in state.explored}
    for e in settings.explorations:
        if e.name in done:
            continue
        folder = d / "explore" / e.name
        resuming = (folder / "checkpoint.h5").exists() and (folder / "explore.toml").exists()
        t0 = time.perf_counter()
        res = run_exploration(e, state.fit["potential"], state.fit["active_set"], folder, settings, restart=resuming)
        clock.add("explore", time.perf_counter() - t0)
        signal_name = res.stopped_by if res.stopped_by in ("SIGTERM", "SIGUSR1") else None
        if signal_name and res.steps < res.steps_asked:
            say(f"  exploration {e.name}: stopped by {signal_name} at step {res.steps} (checkpoint written)")
            state.stop_reason = signal_name
            return False
        if signal_name:                  # the signal came at the last step: the run is complete
            res.stopped_by = None
        rec = res.as_dict()
        state.explored.append(rec)
        state.save(settings.folder)
        if signal_name:
            state.stop_reason = signal_name
            return False
        how = ("completed" if res.steps >= res.steps_asked and res.stopped_by is None
               else f"stopped by {res.stopped_by}")
        say(f"  exploration {e.name}: {how} at step {res.steps}/{res.steps_asked}, max gamma "
            f"{res.max_gamma:.3g}, {res.frames_dumped} frame(s) above {settings.gamma_lower:g} "
            f"({res.wall_s:.1f} s)")
    return True


def _candidates(settings, state, d: Path, grade, potential):
    from .selection import Candidate, projection_rows
    from .structures import read_frames
    out = []
    for rec in state.explored:
        frames = read_frames(d / "explore" / rec["name"] / "extrapolative.extxyz")
        frames = [a for a in frames if float(a.info.get("max_gamma", np.inf)) > settings.gamma_lower]
        if len(frames) > settings.max_candidates_per_run:
            keep = np.unique(np.linspace(0, len(frames) - 1, settings.max_candidates_per_run).round().astype(int))
            frames = [frames[k] for k in keep]
        for a in frames:
            origin = f"{rec['name']}#step{a.info.get('step', '?')}"
            a = a.copy()
            for key in list(a.arrays):
                if key not in ("numbers", "positions"):
                    del a.arrays[key]
            a.info = {"origin": origin}
            rows, index = projection_rows(grade, potential, a)
            out.append(Candidate(atoms=a, origin=origin, rows=rows, atom_index=index))
    return out


def _select_stage(settings, state, d: Path, say, clock):
    """D-optimal selection into iter_{k+1}/to_label.extxyz."""
    from ..potential import ACEPotential
    from ..potential.extrapolation import ExtrapolationGrade, read_active_set
    from .selection import select_d_optimal
    from .structures import write_frames
    t0 = time.perf_counter()
    potential = ACEPotential(state.fit["potential"])
    grade = ExtrapolationGrade(potential)
    cands = _candidates(settings, state, d, grade, potential)
    matrices = read_active_set(state.fit["active_set"], potential.model)
    inverses = {mu: matrices[el] for mu, el in enumerate(potential.elements) if el in matrices}
    chosen = select_d_optimal(cands, inverses, settings.structures_per_iteration, settings.gamma_lower,
                              settings.active_set_tolerance, cut_radius=settings.select["cut_radius"],
                              cutoff=float(potential.cutoff), vacuum=settings.select["vacuum"])
    nxt = _iter_dir(settings, state.iteration + 1)
    nxt.mkdir(parents=True, exist_ok=True)
    frames = []
    for c in chosen:
        a = c["atoms"].copy()
        a.info = {"origin": c["origin"]}
        frames.append(a)
    write_frames(nxt / "to_label.extxyz", frames)
    records = [{"origin": c["origin"], "atoms": len(c["atoms"]), "gamma_at_selection": float(c["gamma"]),
                "gamma": float(c["gamma_initial"])} for c in chosen]
    _atomic(d / "selected.yaml", yaml.safe_dump({"candidates": len(cands), "selected": records}, sort_keys=False))
    clock.add("select", time.perf_counter() - t0)
    say(f"  selection: {len(chosen)} of {len(cands)} candidate frame(s) (D-optimal, "
        f"{time.perf_counter() - t0:.1f} s)")
    return len(chosen), len(cands)


def _finish_iteration(settings, state, d: Path, selected, candidates, converged):
    record = {"iteration": state.iteration, **state.label, "fit": state.fit.get("errors", {}),
              "potential": state.fit.get("potential"), "active_set_sizes": state.fit.get("active_set_sizes"),
              "explorations": [{k: v for k, v in r.items() if k != "gamma_history"} for r in state.explored],
              "candidates": candidates, "selected": selected, "converged": converged}
    _atomic(d / "summary.yaml", yaml.safe_dump(record, sort_keys=False))
    state.history.append(record)


def run_learn(settings, *, restart: bool = False, say=print) -> int:
    """``acemd learn input.toml [--restart]``: the whole loop; returns the exit status (0 finished,
    75 stopped by a signal, ready to continue).  Errors raise (LearnInputError, LabellerError,
    ExplorationError, FitInputError, LearnError, StateError)."""
    from .report import write_report
    t_session = time.perf_counter()
    labeller, _ = check_learn(settings, say)
    folder = settings.folder
    state_path = LearnState.path(folder)
    if restart:
        state = LearnState.load(folder, settings.signature, settings.source)
        say(f"# continuing {folder} at iteration {state.iteration}, stage {state.stage}")
    else:
        if state_path.exists():
            raise StateError(f"{folder} already holds a learning run ({state_path}); continue it with: acemd learn "
                             f"{settings.source} --restart, or choose another [learn].folder")
        folder.mkdir(parents=True, exist_ok=True)
        state = LearnState(signature=settings.signature)
        d0 = _iter_dir(settings, 0)
        d0.mkdir(parents=True, exist_ok=True)
        _start_structures(settings, d0)
        state.save(folder)
    clock = _Clock(state)
    busy0 = sum(state.times_s.values())

    def stopped():
        signum = signals.StopRequested().signum      # takes the signal: it is handled by this stop
        name = _signal.Signals(signum).name if signum else (state.stop_reason or "a signal")
        state.stop_reason = ""
        clock.add("other", max(time.perf_counter() - t_session - (sum(state.times_s.values()) - busy0), 0.0))
        state.save(folder)
        say(f"acemd learn: stopped by {name} at iteration {state.iteration}, before or during stage {state.stage} "
            f"(exit status {EXIT_STOPPED}: incomplete; to continue: acemd learn {settings.source} --restart)")
        return EXIT_STOPPED

    while state.stage != "done":
        d = _iter_dir(settings, state.iteration)
        if _stop_requested():
            return stopped()
        if state.stage == "label":
            if not _label_stage(settings, state, labeller, d, say, clock):
                return stopped()
            state.stage = "fit"
            state.save(folder)
        elif state.stage == "fit":
            if not _fit_stage(settings, state, d, say, clock):
                return stopped()
            state.stage = "explore"
            state.explored = []
            state.save(folder)
        elif state.stage == "explore":
            if not _explore_stage(settings, state, d, say, clock):
                return stopped()
            state.stage = "select"
            state.save(folder)
        elif state.stage == "select":
            over = [r for r in state.explored if r["max_gamma"] > settings.gamma_lower]
            incomplete = [r for r in state.explored if r["stopped_by"] not in (None, "extrapolation")]
            converged = not over and not incomplete
            last = state.iteration + 1 >= settings.max_iterations
            selected = candidates = 0
            if not converged and not last:
                selected, candidates = _select_stage(settings, state, d, say, clock)
            _finish_iteration(settings, state, d, selected, candidates, converged)
            if converged:
                state.converged, state.stop_reason = True, (f"no exploration exceeded gamma_lower = "
                                                            f"{settings.gamma_lower:g}")
                state.stage = "done"
            elif last:
                state.stop_reason = f"max_iterations = {settings.max_iterations} reached"
                state.stage = "done"
            elif selected == 0:
                state.stop_reason = ("no structure could be selected (explorations stopped by guards without "
                                     "extrapolative frames)" if incomplete and not over else
                                     "the selection found nothing above gamma_lower")
                state.stage = "done"
            else:
                state.iteration += 1
                state.stage, state.label, state.fit, state.explored = "label", {}, {}, []
            state.save(folder)
    clock.add("other", max(time.perf_counter() - t_session - (sum(state.times_s.values()) - busy0), 0.0))
    state.save(folder)
    report = write_report(settings, state)
    say(f"# {'converged' if state.converged else 'not converged'}: {state.stop_reason}; final potential "
        f"{report['final_potential']}; report {folder / 'report.yaml'}")
    return 0
