"""The ``[properties]`` driver: the validation battery of one structure, side by side with a reference.

Stages on one :class:`~acemd.simulation.Simulation` (the input structure; its checkpoint carries
the battery's progress):

1. relax the input structure (cell ``[properties].cell`` at ``pressure``) with acemd's minimiser,
   and, with a reference calculator, with the reference and ASE's optimiser: the phase of each;
2. for each property of ``compute``, in that order, run its module (:mod:`acemd.properties`)
   with acemd's context, then with the reference's (the same protocol); ``elastic`` with acemd is
   the ``[elastic]`` driver itself (:class:`~acemd.drivers.elastic.ElasticRun`, 0 K);
3. the maximum extrapolation grade of each property's structures (with ``[extrapolation]``);
4. the table on stdout, the report (YAML/JSON) and the raw data (HDF5).

A stop signal (SIGTERM/SIGUSR1) is honoured between structures of a property (the modules call
``ctx.checkpoint_or_stop``) and between properties: the checkpoint holds the relaxed phases, the
finished properties and the progress of the one under way; the run exits 75 and
``acemd input --restart CKPT`` continues to the report the uninterrupted run writes.
"""
from __future__ import annotations

import copy
import importlib
import json
import signal
import sys
import time as _time
from pathlib import Path

import numpy as np
from mpi4py import MPI

from .. import __version__
from ..parallel.collective import on_root
from ..signals import StopRequested
from ..simulation import InputError, Simulation
from ..units import UNITS_LINE
from ..properties.base import PropertyContext, PropertyEntry, PropertyResult, PropertyStopped

STATE_NAME = "properties"        # the checkpoint's {"driver": {"name": ...}}
RUNNERS = {"eos": ("eos", "run_eos"), "phases": ("phases", "run_phases"),
           "vacancy": ("defects", "run_vacancy"), "interstitial": ("defects", "run_interstitial"),
           "surfaces": ("surfaces", "run_surfaces"), "stacking_fault": ("faults", "run_faults"),
           "phonons": ("phonons", "run_phonons"), "qha": ("qha", "run_qha")}
RELAX_KEYS = ("method", "cell", "pressure", "fmax", "stress_tol", "max_steps", "max_displacement", "skin")


class _Stopped(Exception):
    def __init__(self, signum, where):
        super().__init__(where)
        self.signum, self.where = signum, where


def _atoms_blob(atoms, energy):
    return {"cell": np.array(atoms.cell.array), "positions": np.array(atoms.positions),
            "numbers": np.array(atoms.numbers, dtype=np.int64), "pbc": np.array(atoms.pbc, dtype=np.int64),
            "energy": float(energy)}


def _atoms_of(blob):
    from ase import Atoms
    return Atoms(numbers=np.asarray(blob["numbers"]), positions=np.asarray(blob["positions"]),
                 cell=np.asarray(blob["cell"]), pbc=np.asarray(blob["pbc"], bool)), float(blob["energy"])


def _result_blob(r: PropertyResult) -> dict:
    head = {"name": r.name, "entries": [e.as_dict() for e in r.entries], "units": r.units,
            "info": r.info, "max_gamma": r.max_gamma}
    from ..properties.report import _jsonable
    return {"json": json.dumps(_jsonable(head)), "data": r.data}


def _result_of(blob) -> PropertyResult:
    head = json.loads(blob["json"])
    entries = [PropertyEntry(e["name"], e["value"], e["unit"], e["error"], flags=list(e["flags"]), note=e["note"])
               for e in head["entries"]]
    return PropertyResult(head["name"], entries, data=dict(blob.get("data") or {}), units=head["units"],
                          info=head["info"], max_gamma=head["max_gamma"])


class PropertiesRun:
    """``PropertiesRun(settings, text, path, comm).run()``: the [properties] driver."""

    def __init__(self, settings, input_text, input_path, comm=MPI.COMM_WORLD, restart=None,
                 stream=sys.stdout):
        self.settings = settings
        self.section = settings["properties"]
        self.input_text = input_text
        self.input_path = Path(input_path)
        self.comm = comm
        self.rank = comm.Get_rank()
        self.stream = stream
        self.nsteps = 0                     # no MD steps: a stopped run is incomplete (exit 75)
        self.simulation = Simulation(settings, input_text, input_path, comm=comm, restart=restart,
                                     skin=self.section["skin"], stream=stream)
        self.report_path = Path(self.section["report"])
        self.output_dir = self.report_path.parent
        self.stem = self.report_path.with_suffix("")
        self.progress = {"signature": self._signature(), "phases": {}, "done": {}, "partial": {}}

    # ------------------------------------------------------------ helpers
    def _say(self, line):
        if self.rank == 0 and self.stream is not None:
            print(line, file=self.stream, flush=True)

    def _signature(self) -> str:
        sec = self.section
        keys = {k: sec[k] for k in RELAX_KEYS + ("parallel_min_atoms",)}
        keys["reference"] = sec["reference"]
        return json.dumps(keys, sort_keys=True, default=str)

    def _saved(self):
        sim = self.simulation
        saved = ((sim.restart_state or {}).get("driver") or {}) if sim.restarting else {}
        if saved.get("name") != STATE_NAME:
            return None                                   # another driver's checkpoint: its atoms start
        if saved.get("signature") != self._signature():
            raise InputError(f"--restart {sim.restart}: [properties] settings differ from the run that wrote "
                             "the checkpoint (only compute, the property tables, report and data may change: a "
                             "property whose table changed is computed again); restart with the same "
                             "settings or start without --restart")
        return saved

    def _signalled(self) -> int:
        return int(self.comm.allreduce(self._stop.signum, op=MPI.MAX))

    def _write_checkpoint(self):
        sim = self.simulation
        sim.state.velocities[:] = 0.0
        sim.write_checkpoint(state={"driver": {"name": STATE_NAME, **self.progress}}, step=0, time_ps=0.0)

    # ------------------------------------------------------------ run
    def run(self) -> dict:
        self._stop = StopRequested()
        self._stop.install()
        try:
            return self._run()
        except _Stopped as exc:
            self._write_checkpoint()
            name = signal.Signals(exc.signum).name if exc.signum else "a signal"
            message = (f"[properties] stopped by {name} ({exc.where}): checkpoint written to "
                       f"{self.settings['checkpoint']['file']}")
            self._say(f"# {message}")
            return {"stopped_by": name, "message": message}
        finally:
            self._stop.uninstall()

    def _backends(self):
        from ..properties.backends import AcemdBackend, AseBackend
        from ..properties.reference import calculator_factory
        sec = self.section
        relax = {k: sec[k] for k in RELAX_KEYS}
        out = {"acemd": AcemdBackend(self.simulation.term, self.settings, self.comm, relax,
                                     sec["parallel_min_atoms"])}
        factory = calculator_factory(sec["reference"], self.input_path)
        if factory is not None:
            out["reference"] = AseBackend(factory, self.comm, relax)
        return out

    def _phase(self, label, backend):
        """The relaxed input structure of ``label`` (from the checkpoint, or relaxed now)."""
        if label in self.progress["phases"]:
            return _atoms_of(self.progress["phases"][label])
        if self._signalled():
            raise _Stopped(self._signalled(), f"before the relaxation of the {label} phase")
        atoms = self.simulation.gather_atoms()
        atoms = self.comm.bcast(atoms, root=0)
        atoms.arrays.pop("forces", None)
        relaxed, energy = backend.relax(atoms, cell=self.section["cell"])
        relaxed.wrap()
        self.progress["phases"][label] = _atoms_blob(relaxed, energy)
        self._write_checkpoint()
        n = len(relaxed)
        self._say(f"# {label}: relaxed phase {relaxed.get_chemical_formula()}, E = {energy / n:.6f} eV/atom, "
                  f"V = {relaxed.get_volume() / n:.4f} A^3/atom, cell lengths "
                  f"{' '.join(f'{x:.5f}' for x in relaxed.cell.lengths())} A")
        return relaxed, energy

    def _context(self, label, backend, atoms):
        sec = self.section

        def checkpoint(key, table_json):
            def save(progress):
                self.progress["partial"][key] = dict(progress, _table=table_json)
                self._write_checkpoint()
            return save

        ctx = PropertyContext(atoms=atoms, evaluate=backend.evaluate, relax=backend.relax,
                              relax_many=backend.relax_many, calculator=backend.calculator, comm=self.comm,
                              label=label, output_dir=self.output_dir,
                              stop_requested=lambda: bool(self._signalled()), say=self._say,
                              pressure_bar=sec["pressure"], fmax=sec["fmax"],
                              potential=self.simulation.potential if label == "acemd" else None)
        ctx.checkpoint_factory = checkpoint
        return ctx

    def _run_property(self, name, label, ctx):
        key = f"{label}.{name}"
        table = self.section["tables"][name]
        table_json = json.dumps(table, sort_keys=True, default=str)
        done = self.progress["done"].get(key)
        if done is not None and done.get("table") == table_json:
            return _result_of(done)
        if self.progress["partial"].get(key, {}).get("_table", table_json) != table_json:
            self.progress["partial"].pop(key)
        if self._signalled():
            raise _Stopped(self._signalled(), f"before {name} ({label})")
        ctx.saved = {k: v for k, v in self.progress["partial"].get(key, {}).items() if k != "_table"}
        ctx.checkpoint = ctx.checkpoint_factory(key, table_json)
        self._say(f"# {name} ({label})")
        t0 = _time.perf_counter()
        try:
            if name == "elastic":
                result = self._elastic(label, ctx, table)
            else:
                module_name, fn = RUNNERS[name]
                module = importlib.import_module(f"acemd.properties.{module_name}")
                result = getattr(module, fn)(ctx, table)
        except PropertyStopped:
            raise _Stopped(self._signalled(), f"during {name} ({label})") from None
        result.info["wall_s"] = _time.perf_counter() - t0
        if label == "acemd":
            self._gamma(result)
        result.structures = []
        self.progress["done"][key] = dict(_result_blob(result), table=table_json)
        self.progress["partial"].pop(key, None)
        self._write_checkpoint()
        return result

    # ------------------------------------------------------------ elastic
    def _elastic(self, label, ctx, table):
        from ..properties.elastic import entries_from_report, run_elastic_strains
        if label != "acemd":
            return run_elastic_strains(ctx, table)
        from ..config import SCHEMA
        from .elastic import ElasticRun
        sec = self.section
        phase_file = f"{self.stem}.phase.extxyz"

        def write_phase():
            from ase.io import write
            write(phase_file, ctx.atoms, format="extxyz", parallel=False)   # rank 0 alone: no ASE broadcast
        on_root(self.comm, write_phase)
        self.comm.Barrier()
        elastic = {k: s.default for k, s in SCHEMA["elastic"].items() if s.default is not None}
        elastic.update({k: sec[k] for k in RELAX_KEYS})
        elastic.update(strains=list(table["strains"]), relax_ions=table["relax_ions"], relax=True,
                       temperature=0.0, report=f"{self.stem}.elastic.json", data=f"{self.stem}.elastic.h5")
        settings = copy.deepcopy(self.settings)
        settings["properties"] = {}
        settings["elastic"] = elastic
        settings["structure"] = {"file": phase_file}
        settings["checkpoint"] = dict(settings["checkpoint"], file=f"{self.stem}.elastic.ckpt.h5")
        settings["thermo"] = dict(settings["thermo"], file=f"{self.stem}.elastic.log")
        run = ElasticRun(settings, self.input_text, self.input_path, comm=self.comm, stream=self.stream)
        report = run.run()
        if report.get("stopped_by") == "guard":
            raise InputError(f"[properties] elastic: {report['message']}")
        if report.get("stopped_by"):
            raise PropertyStopped("elastic")
        result = entries_from_report(report)
        result.info["report"] = settings["elastic"]["report"]        # the [elastic] driver's own report
        return result

    # ------------------------------------------------------------ extrapolation grade
    def _gamma(self, result):
        ex = self.settings.get("extrapolation")
        if not ex or not result.structures:
            return
        from ..potential.calculator import ACECalculator
        if not hasattr(self, "_gamma_calc"):
            self._gamma_calc = ACECalculator(self.simulation.potential, active_set=ex["active_set"])
        calc = self._gamma_calc
        structures = result.structures
        mine = []
        for i in range(self.rank, len(structures), self.comm.Get_size()):
            a = structures[i].copy()
            a.calc = calc
            a.get_potential_energy()
            mine.append(float(calc.results["max_gamma"]))
        values = [g for part in self.comm.allgather(mine) for g in part]
        result.max_gamma = max(values) if values else None
        threshold = self.section["gamma_threshold"]
        if result.max_gamma is not None and result.max_gamma > threshold:
            for e in result.entries:
                e.flags.append(f"extrapolating (max gamma {result.max_gamma:.3g} > {threshold:g})")

    # ------------------------------------------------------------ the battery
    def _run(self) -> dict:
        sec = self.section
        t_start = _time.perf_counter()
        saved = self._saved()
        if saved is not None:
            for k in ("phases", "done", "partial"):
                self.progress[k] = dict(saved.get(k) or {})
            self._say(f"# restart: {len(self.progress['done'])} property runs done, continuing")
        for line in self.simulation.preamble():
            self._say(f"# {line}")
        ref = sec["reference"]
        self._say(f"# properties: {', '.join(sec['compute'])}; reference: "
                  + ("none" if not ref else ref.get("label", "reference")))
        backends = self._backends()
        contexts = {}
        for label, backend in backends.items():
            atoms, _ = self._phase(label, backend)
            contexts[label] = self._context(label, backend, atoms)
        results = {label: [] for label in backends}
        for name in sec["compute"]:
            for label, ctx in contexts.items():
                results[label].append(self._run_property(name, label, ctx))
        acemd = results["acemd"]
        reference_info = self._references(results)
        lines = self._table(acemd, reference_info)
        wall = _time.perf_counter() - t_start
        calls = {label: b.force_calls for label, b in backends.items()}
        metadata = dict(self.simulation.metadata())
        metadata.update({"acemd_version": __version__, "units": UNITS_LINE, "wall_s": wall,
                         "ranks": self.comm.Get_size(), "force_calls_this_run": calls,
                         "phase": {label: {"cell_A": np.asarray(ctx.atoms.cell.array).tolist(),
                                           "n_atoms": len(ctx.atoms),
                                           "formula": ctx.atoms.get_chemical_formula()}
                                   for label, ctx in contexts.items()}})
        self._write(acemd, results, metadata, reference_info)
        for line in lines:
            self._say(line)
        self._say(f"# report: {sec['report']}; data: {sec['data']}; {wall:.1f} s wall")
        return {"results": acemd, "reference": results.get("reference"), "report": sec["report"],
                "table": lines}

    def _references(self, results) -> dict:
        from ..properties.reference import apply_values, dataset_references, pair
        sec = self.section
        ref = sec["reference"] or {}
        info = {"label": ref.get("label")}
        if "reference" in results:
            for mine, theirs in zip(results["acemd"], results["reference"]):
                pair(mine, theirs, ref["label"])
            info["calculator"] = ref["calculator"]
            info["kwargs"] = ref.get("kwargs", {})
        if ref.get("dataset"):
            phase, _ = _atoms_of(self.progress["phases"]["acemd"])
            values, dinfo = on_root(self.comm, lambda: dataset_references(ref["dataset"], phase))
            values, dinfo = self.comm.bcast((values, dinfo) if self.rank == 0 else None)
            info["dataset"] = dinfo
            apply_values(results["acemd"], values, f"{ref['label']} (dataset)")
        if ref.get("values"):
            unused = apply_values(results["acemd"], ref["values"], f"{ref['label']} (values)")
            if unused:
                names = [e.name for r in results["acemd"] for e in r.entries]
                from ..config import _suggest
                for n in unused:
                    self._say(f"# WARNING: [properties.reference.values] {n!r} names no entry of this run"
                              + _suggest(n, names))
                info["unused_values"] = unused
        return info

    def _table(self, results, reference_info):
        from ..properties.report import table_lines
        return ["", f"# properties of {self.simulation.potential.path.name}"
                + (f" against {reference_info['label']}" if reference_info.get("label") else "")] + \
            table_lines(results, reference_info.get("label"))

    def _write(self, acemd, results, metadata, reference_info):
        from ..properties.report import report_dict, write_data, write_report
        sec = self.section
        report = report_dict(acemd, {k: v for k, v in metadata.items() if k != "input_text"}, reference_info)

        def write():
            write_report(sec["report"], report)
            write_data(sec["data"], results, acemd, metadata)
        on_root(self.comm, write)
