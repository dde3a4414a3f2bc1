"""Labellers: the reference method that gives energies, forces and stresses of selected structures.

Two kinds, both taking a list of ``ase.Atoms`` and returning one :class:`Label` per structure:

- :class:`CalculatorLabeller`: any ASE calculator named ``module:Class`` with keyword arguments
  (``ase.calculators.emt:EMT``, ``acemd:ACECalculator`` with a reference potential, a DFT code's
  ASE calculator).  A fresh calculator per structure, so no state carries over.
- :class:`CommandLabeller`: an external command that reads an extxyz of the structures and writes
  an extxyz with their energies, forces and (optionally) stresses, the way DFT runs on clusters
  (the command may submit a batch job and wait).  Every input frame carries ``learn_id`` in its
  info; the output frames are matched by it (or by order when the command drops the key).

A structure whose label is missing, has no forces, has forces of the wrong shape or a non-finite
value is a failed label: recorded with its reason and skipped, never silently dropped.
"""
from __future__ import annotations

import importlib
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Label", "LabellerError", "make_labeller", "CalculatorLabeller", "CommandLabeller", "check_label"]


class LabellerError(ValueError):
    """The labeller cannot be built (unimportable module, not a calculator) or failed on every structure."""


@dataclass
class Label:
    """One structure's reference values: energy (eV), forces (eV/Å, (n, 3)), stress (eV/Å³, Voigt, or None),
    or the reason it failed (``error``)."""

    energy: float | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    error: str = ""


def check_label(label: Label, natoms: int) -> Label:
    """The same label with ``error`` set when it cannot be used (no energy/forces, wrong shape, NaN/inf)."""
    if label.error:
        return label
    if label.energy is None:
        return Label(error="no energy")
    if label.forces is None:
        return Label(error="no forces")
    f = np.asarray(label.forces, dtype=float)
    if f.shape != (natoms, 3):
        return Label(error=f"forces of shape {f.shape}, expected ({natoms}, 3)")
    if not np.isfinite(label.energy):
        return Label(error=f"energy is {label.energy}")
    if not np.all(np.isfinite(f)):
        return Label(error=f"{int(np.sum(~np.isfinite(f)))} force components are NaN/inf")
    s = label.stress
    if s is not None:
        s = np.asarray(s, dtype=float).ravel()
        if s.shape == (9,):
            m = s.reshape(3, 3)
            s = np.array([m[0, 0], m[1, 1], m[2, 2], m[1, 2], m[0, 2], m[0, 1]])
        if s.shape != (6,) or not np.all(np.isfinite(s)):
            return Label(error=f"stress {s.tolist()} is not 6 finite values (drop it or fix the labeller)")
    return Label(energy=float(label.energy), forces=f, stress=s)


def _import_class(spec: str):
    module_name, _, cls_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LabellerError(f"labeller calculator '{spec}': cannot import module '{module_name}' ({exc}); "
                            "install it or correct [learn.labeller].calculator") from None
    try:
        obj = module
        for part in cls_name.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise LabellerError(f"labeller calculator '{spec}': module '{module_name}' has no '{cls_name}'") from None
    return obj


class CalculatorLabeller:
    """Labels by an ASE calculator ``module:Class(**kwargs)``; built once here, so a bad name or bad
    arguments fail before any work."""

    def __init__(self, spec: str, kwargs: dict, stress: bool = True):
        self.spec, self.kwargs, self.stress = spec, dict(kwargs), stress
        self.cls = _import_class(spec)
        implemented = getattr(self.cls, "implemented_properties", None)
        if implemented is not None and not {"energy", "forces"} <= set(implemented):
            raise LabellerError(f"labeller calculator '{spec}': {self.cls.__name__} does not compute "
                                + " and ".join(p for p in ("energy", "forces") if p not in implemented)
                                + f" (its implemented_properties: {', '.join(implemented)}); the fit needs "
                                  "energies and forces")
        try:
            calc = self.cls(**self.kwargs)
        except Exception as exc:  # noqa: BLE001 - any error of a foreign constructor
            raise LabellerError(f"labeller calculator '{spec}' with kwargs {self.kwargs}: cannot be built "
                                f"({type(exc).__name__}: {exc})") from None
        if not callable(getattr(calc, "get_potential_energy", None)) and not hasattr(calc, "calculate"):
            raise LabellerError(f"labeller calculator '{spec}': {type(calc).__name__} is not an ASE calculator")
        self._calc = calc

    def describe(self) -> str:
        return f"ASE calculator {self.spec}"

    def label_one(self, atoms) -> Label:
        a = atoms.copy()
        a.calc = self._calc
        self._calc.reset() if hasattr(self._calc, "reset") else None
        try:
            energy = a.get_potential_energy()
            forces = a.get_forces()
            stress = None
            if self.stress and all(a.pbc):
                try:
                    stress = a.get_stress(voigt=True)
                except Exception:  # noqa: BLE001 - calculators without stress: energies and forces only
                    stress = None
        except Exception as exc:  # noqa: BLE001 - the reference method failed on this structure
            from ase.calculators.calculator import PropertyNotImplementedError
            if isinstance(exc, PropertyNotImplementedError):
                return Label(error=f"no forces or energy (PropertyNotImplementedError: {exc})")
            return Label(error=f"{type(exc).__name__}: {exc}")
        return check_label(Label(energy=energy, forces=forces, stress=stress), len(a))

    def label(self, structures, on_done=None, stop=None) -> list[Label]:
        """Labels of ``structures``; ``on_done(i, label)`` after each, ``stop()`` True ends early."""
        out = []
        for i, atoms in enumerate(structures):
            if stop is not None and stop():
                break
            lab = self.label_one(atoms)
            out.append(lab)
            if on_done is not None:
                on_done(i, lab)
        return out


class CommandLabeller:
    """Labels by an external command ``... {input} ... {output}`` (extxyz in, extxyz out)."""

    def __init__(self, command: str, folder, timeout: float = 0.0):
        self.command, self.folder, self.timeout = command, Path(folder), float(timeout)
        self.program = shlex.split(command)[0] if command.strip() else ""
        import shutil
        if not self.program or (shutil.which(self.program) is None and not (self.folder / self.program).exists()):
            raise LabellerError(f"labeller command '{command}': program '{self.program}' not found on PATH or "
                                f"in {self.folder}")

    def describe(self) -> str:
        return f"command {self.command}"

    def label(self, structures, on_done=None, stop=None, workdir=None) -> list[Label]:
        from ase.io import read, write
        if not structures:
            return []
        workdir = Path(workdir or tempfile.mkdtemp(prefix="acemd_label_"))
        workdir.mkdir(parents=True, exist_ok=True)
        inp, outp = workdir / "to_label.extxyz", workdir / "labelled.extxyz"
        frames = []
        for i, a in enumerate(structures):
            b = a.copy()
            b.calc = None
            b.info = {"learn_id": i}
            b.arrays = {k: v for k, v in b.arrays.items() if k in ("numbers", "positions")}
            frames.append(b)
        write(inp, frames, format="extxyz", parallel=False)
        outp.unlink(missing_ok=True)
        cmd = self.command.replace("{input}", shlex.quote(str(inp))).replace("{output}", shlex.quote(str(outp)))
        proc = subprocess.Popen(cmd, shell=True, cwd=self.folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        import time
        t0 = time.monotonic()
        while proc.poll() is None:
            if stop is not None and stop():
                _kill(proc)
                return []
            if self.timeout and time.monotonic() - t0 > self.timeout:
                _kill(proc)
                return [Label(error=f"command timed out after {self.timeout:g} s") for _ in structures]
            time.sleep(0.05)
        output = proc.stdout.read() if proc.stdout else ""
        (workdir / "command.log").write_text(output)
        if proc.returncode != 0 and not outp.exists():
            tail = output.strip().splitlines()[-3:]
            return [Label(error=f"command exited with status {proc.returncode}: {' | '.join(tail)}")
                    for _ in structures]
        if not outp.exists():
            return [Label(error=f"command wrote no {outp.name}") for _ in structures]
        try:
            done = read(outp, index=":", format="extxyz", parallel=False)
        except Exception as exc:  # noqa: BLE001
            return [Label(error=f"cannot read the command's output {outp}: {exc}") for _ in structures]
        by_id = {}
        for k, a in enumerate(done):
            key = a.info.get("learn_id", k if len(done) == len(structures) else None)
            if key is not None:
                by_id[int(key)] = a
        labels = []
        for i, a in enumerate(structures):
            got = by_id.get(i)
            if got is None:
                lab = Label(error="not in the command's output")
            else:
                lab = check_label(_label_of(got), len(a))
                if not lab.error and len(got) == len(a) and np.abs(got.positions - a.positions).max() > 1e-4:
                    lab = Label(error="the command's output frame has other positions than the input")
            labels.append(lab)
            if on_done is not None:
                on_done(i, lab)
        return labels


def _kill(proc):
    import os
    import signal
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except Exception:  # noqa: BLE001
        proc.kill()


def _label_of(atoms) -> Label:
    """Energy, forces, stress from an extxyz frame (calculator results or info/arrays keys)."""
    calc = atoms.calc
    res = dict(getattr(calc, "results", {}) or {})
    energy = res.get("energy", atoms.info.get("energy"))
    forces = res.get("forces", atoms.arrays.get("forces"))
    stress = res.get("stress", atoms.info.get("stress"))
    return Label(energy=None if energy is None else float(energy), forces=forces, stress=stress)


def make_labeller(settings: dict):
    """The labeller of a checked ``[learn.labeller]`` table (raises LabellerError)."""
    if "calculator" in settings:
        return CalculatorLabeller(settings["calculator"], settings.get("kwargs", {}), settings.get("stress", True))
    return CommandLabeller(settings["command"], settings["folder"], settings.get("timeout", 0.0))
