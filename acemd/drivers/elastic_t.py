"""The ``[elastic]`` driver at temperature > 0: isothermal elastic constants from MD, with errors.

Stages on one :class:`~acemd.simulation.Simulation`, on one global step axis
(each stage starts where the previous one ends, so the Langevin/CSVR noise,
keyed by step and atom id, is never reused and a restart draws the same):

1. ``npt``: NPT at ``temperature`` and ``pressure``; the mean cell is the average
   over the second half (block-averaged error).  The final configuration is
   mapped affinely onto the mean cell and kept as the reference.
2. ``strain`` route: for each Voigt strain j and magnitude e, at +e and -e, an
   NVT run from the reference deformed by F = I + e_j; after
   ``equilibration_steps`` the stress -(K + W)/V is block-averaged.  C is the
   weighted straight-line fit of stress against strain (as at 0 K).
3. ``fluctuation`` route: one NVT run at the reference cell,
   C = <B> - (V/k_BT)(<s s> - <s><s>) + N k_BT/V (d_ik d_jl + d_il d_jk), s the
   virial stress, B = (1/V0) d^2U/d(eta)^2 by central differences of the second
   Piola-Kirchhoff virial stress under strains of +-``born_strain`` (the
   configuration deformed, forces through the engine, put back).  Errors by
   jackknife over blocks.

Every ``block_steps`` steps of a stage the atoms are put into a canonical
order (gathered by id and distributed, as a restart does) and the forces
recomputed; a stop signal is honoured there: a checkpoint records the stage,
its samples so far and everything accumulated, and ``--restart`` continues
bit for bit as the uninterrupted run would have.  A checkpoint is also written at
the end of every stage, so a run killed without warning (kill -9) loses at most one.

The ``[guards]`` of MD check every stage (:class:`~acemd.guards.Guards`, built per stage with
that stage's ensemble); a trip keeps the samples up to the last good state, checkpoints it and
ends the run (``stopped_by = "guard"``, exit status 4).
"""
from __future__ import annotations

import signal
import time as _time

import numpy as np
from mpi4py import MPI

from ..blockstats import block_average, block_means, jackknife
from ..elasticity import (VOIGT_NAMES, born_stability, crystal_class, fluctuation_tensor,
                          independent_constants, independent_constants_errors, kinetic_elastic_term,
                          lagrangian_deformation, moduli_errors, second_pk_stress, stress_to_voigt,
                          voigt_strain_tensor, vrh_moduli, weighted_fit_columns)
from ..guards import Guards
from ..integrators import BarostatGeometryError, build_integrator
from ..integrators.mtk import cell_mode_frequency
from ..parallel.gather import gather_by_id
from ..signals import StopRequested
from ..simulation import InputError, initial_velocities
from .minimize import minimizer_from_settings
from ..units import BOLTZMANN, EV_PER_A3_TO_BAR, EV_PER_A3_TO_GPA
from ..io.thermo import format_hms
from ..io.atomic import replaced_atomically

STATE_KEY = "elastic_t"
CELL_VOLUME_STRAIN = 0.01    # volumetric strain of the two 0 K tensors whose difference is dC/d(eps_v)
CELL_TENSOR_STRAIN = 0.005   # Voigt strain of those tensors' central differences




class FiniteTemperatureElastic:
    """The finite-temperature protocol of an :class:`~acemd.drivers.elastic.ElasticRun`."""

    def __init__(self, run):
        self.run_ = run
        self.sim = run.simulation
        self.sec = sec = run.section
        self.settings = run.settings
        self.say = run._say
        self.comm = self.sim.comm
        self.rank = self.comm.Get_rank()
        self.temperature = float(sec["temperature"])
        self.dt = float(sec["timestep"])
        self.block = int(sec["block_steps"])
        self.method = sec["method"]
        self.strains = sorted(float(e) for e in sec["strains"])
        self.stages = [("npt", None, None, int(sec["npt_steps"]))]
        nvt = int(sec["equilibration_steps"]) + int(sec["production_steps"])
        if self.method in ("strain", "both"):
            self.stages += [("strain", j, s * e, nvt) for j in range(6) for e in self.strains for s in (1.0, -1.0)]
        if self.method in ("fluctuation", "both"):
            self.stages.append(("fluctuation", None, 0.0, nvt))
        self.barostat_coupling = self._coupling()
        self._check_barostat_damping()
        saved = self.sim.restart_state.get(STATE_KEY) if self.sim.restarting else None
        if self.sim.restarting and not saved:
            raise InputError(f"{self.sim.restart}: this checkpoint holds no finite-temperature [elastic] "
                             "stage; it cannot continue this protocol (start without --restart)")
        if saved:
            self._check_saved(saved)
            self.acc = saved
        else:
            self.acc = {"start_step": int(self.sim.state.step), "stage": 0, "in_progress": False,
                        "current": {}, "results": [], "npt": {}, "reference": None}
        starts = [self.acc["start_step"]]
        for st in self.stages:
            starts.append(starts[-1] + st[3])
        self.starts = starts
        self.end_step = starts[-1]

    # ------------------------------------------------------------ set-up checks
    def _coupling(self):
        cell = self.sim.state.cell
        orthogonal = np.allclose(cell - np.diag(np.diag(cell)), 0.0, atol=1e-9 * np.abs(cell).max())
        wanted = self.sec["coupling"]
        if wanted == "auto":
            wanted = "aniso" if orthogonal else "triclinic"
        if wanted == "aniso" and not orthogonal:
            raise InputError(f"{self.sim.input_path}: [elastic.coupling] = 'aniso' needs an orthogonal cell; "
                             "use iso, or triclinic with barostat = \"npt-mtk\"")
        if wanted != "triclinic":
            return wanted
        if self.sec["barostat"] != "npt-mtk":
            raise InputError(f"{self.sim.input_path}: [elastic.barostat] = '{self.sec['barostat']}' keeps the "
                             "cell shape of this non-orthogonal cell; use barostat = \"npt-mtk\" (triclinic)")
        return "triclinic"

    def _check_barostat_damping(self):
        """npt-mtk: refuse a barostat time whose cell oscillation the timestep cannot follow.

        The cell mode's frequency (:func:`~acemd.integrators.mtk.cell_mode_frequency`, bulk modulus
        1/compressibility) must satisfy omega dt <= 1 (period >= 2 pi steps; it diverges at 2)."""
        if self.sec["barostat"] != "npt-mtk":
            return
        st, tau = self.sim.state, float(self.sec["barostat_damping"])
        bulk_bar = 1.0 / float(self.sec["compressibility"])
        omega = cell_mode_frequency(st.n_atoms_total, st.volume, self.temperature, tau,
                                    bulk_bar / EV_PER_A3_TO_BAR)
        if omega * self.dt <= 1.0:
            return
        tau_min = np.ceil(tau * omega * self.dt * 100.0) / 100.0        # omega ~ 1/tau
        raise InputError(
            f"{self.sim.input_path}: [elastic] barostat_damping = {tau:g} ps is too short for npt-mtk at "
            f"{self.temperature:g} K with timestep = {self.dt:g} ps: the MTK barostat mass (N+1) kB T tau^2 "
            f"shrinks with the temperature, so the cell would oscillate with a period of "
            f"{2e3 * np.pi / omega:.3g} fs (bulk modulus 1/compressibility = {bulk_bar / 1e4:.4g} GPa), "
            f"{2 * np.pi / (omega * self.dt):.2g} timesteps, and its integration diverges below ~3; use "
            f"barostat_damping >= {tau_min:g} ps (or a smaller timestep; set compressibility to the "
            "material's if it differs much from the default)")

    def _signature(self):
        s = self.sec
        return {k: s[k] for k in ("temperature", "pressure", "method", "timestep", "npt_steps",
                                  "equilibration_steps", "production_steps", "block_steps", "sample_every",
                                  "born_every", "born_strain", "thermostat", "thermostat_damping",
                                  "barostat", "barostat_damping", "coupling")} | {"strains": list(self.strains)}

    def _check_saved(self, saved):
        mine, theirs = self._signature(), dict(saved.get("settings", {}))
        diff = [k for k in mine if k in theirs and not np.all(np.asarray(theirs[k]) == np.asarray(mine[k]))]
        if diff:
            raise InputError(f"{self.sim.restart}: [elastic] {', '.join(diff)} differ from the run that wrote "
                             "the checkpoint; restart with the same protocol")

    # ------------------------------------------------------------ integrators
    def _thermostat_dict(self):
        return {"temperature": self.temperature, "damping": self.sec["thermostat_damping"],
                "seed": self.settings["velocities"]["seed"], "zero_momentum": True,
                "chain_length": 3, "chain_loops": 1, "yoshida_order": 3}

    def _stage_settings(self, kind):
        """A stage's [md]/[thermostat]/[barostat] settings, as an MD input would give them."""
        md = {"timestep": self.dt}
        out = {"md": md, "thermostat": self._thermostat_dict()}
        if kind == "npt":
            md["ensemble"] = self.sec["barostat"]
            out["barostat"] = {"pressure": self.sec["pressure"], "damping": self.sec["barostat_damping"],
                               "coupling": self.barostat_coupling, "compressibility": self.sec["compressibility"]}
        else:
            md["ensemble"] = {"langevin": "nvt-langevin", "csvr": "nvt-csvr"}[self.sec["thermostat"]]
        return out

    def _integrator(self, kind):
        integrator = build_integrator(self._stage_settings(kind))
        if hasattr(integrator, "damping_key"):       # named in an npt-mtk runaway message
            integrator.damping_key = "[elastic].barostat_damping"
        return integrator

    def _guards(self, kind, integrator):
        """The [guards] of MD on this stage (reference temperature and drift check of its ensemble)."""
        settings = self._stage_settings(kind) | {"guards": self.settings.get("guards") or {},
                                                 "velocities": self.settings["velocities"]}
        return Guards(settings, self.comm, self.sim.engine, integrator)

    # ------------------------------------------------------------ canonical state
    def _gather(self):
        """The configuration ordered by id on rank 0 (None elsewhere), as a checkpoint stores it."""
        st = self.sim.state
        _, data = gather_by_id(self.comm, st.ids, {"positions": st.positions, "velocities": st.velocities,
                                                   "species": st.species, "image": st.images},
                               n_expected=st.n_atoms_total)
        if data is not None:
            data["ids"] = np.arange(st.n_atoms_total, dtype=np.int64)
        return data

    def _distribute(self, data):
        """Scatter id-ordered arrays from rank 0 (what Simulation does with a checkpoint); forces anew."""
        sim = self.sim
        local = sim.engine.halo.distribute(data)
        sim.state.set_per_atom_arrays(local)
        sim.engine.invalidate()
        sim.compute(force_rebuild=True)

    def _canonicalize(self):
        self._distribute(self._gather())

    # ------------------------------------------------------------ observables
    def _stresses(self):
        """Voigt GPa, tensile positive: total Cauchy stress -(K + W)/V, its second Piola-Kirchhoff form
        J F^-1 s F^-T with respect to the reference cell (F the stage's deformation), the virial
        stress -W/V; and the temperature (K)."""
        eng = self.sim.engine
        kin = eng.kinetic_tensor()
        v = self.sim.state.volume
        total = stress_to_voigt(-(kin + eng.virial) / v * EV_PER_A3_TO_GPA)
        pk2 = stress_to_voigt(second_pk_stress(kin + eng.virial, self.deformation, self.reference_volume)
                              * EV_PER_A3_TO_GPA)
        virial = stress_to_voigt(-eng.virial / v * EV_PER_A3_TO_GPA)
        temp = float(np.trace(kin)) / (eng.degrees_of_freedom() * BOLTZMANN)
        return total, pk2, virial, temp

    def _born_sample(self):
        """Born matrix (1/V0) d2U/d(eta)2 (Voigt, GPa) of the present configuration by central differences."""
        sim = self.sim
        snap = sim.snapshot()
        v0 = sim.state.volume
        d = float(self.sec["born_strain"])
        born = np.zeros((6, 6))
        for j in range(6):
            t = []
            for sign in (1.0, -1.0):
                sim.restore(snap)
                f = lagrangian_deformation(voigt_strain_tensor(j, sign * d))
                sim.deform(f)
                sim.compute()
                t.append(stress_to_voigt(second_pk_stress(sim.engine.virial, f, v0)))
            born[:, j] = (t[0] - t[1]) / (2.0 * d) * EV_PER_A3_TO_GPA
        sim.restore(snap)
        sim.compute()
        return born

    # ------------------------------------------------------------ checkpoint
    def _checkpoint(self, integrator):
        acc = dict(self.acc)
        acc["current"] = {k: np.asarray(v) for k, v in self.acc["current"].items()}   # one array each
        state = {STATE_KEY: acc}
        if integrator is not None:
            state["integrator"] = integrator.state_dict()
        self.sim.write_checkpoint(state=state)

    # ------------------------------------------------------------ stages
    def _stage_label(self, k):
        kind, j, e, _ = self.stages[k]
        if kind == "npt":
            return f"npt {self.sec['barostat']} ({self.barostat_coupling})"
        if kind == "strain":
            return f"strain {k}/{len(self.stages) - 1 - (self.method == 'both')} e_{VOIGT_NAMES[j]} = {e:+.4f}"
        return "fluctuation"

    def _begin_stage(self, k):
        """Put the atoms where stage k starts: the reference (deformed for a strain), or as they are."""
        sim, st = self.sim, self.sim.state
        kind, j, e, _ = self.stages[k]
        start = self.starts[k]
        if kind != "npt":
            ref = self.acc["reference"] if self.rank == 0 else None
            cell = self.comm.bcast(ref["cell"] if self.rank == 0 else None)
            sim.engine.set_cell(cell)
            self._distribute(ref["arrays"] if self.rank == 0 else None)
            self.reference_volume = float(abs(np.linalg.det(cell)))
            if kind == "strain":
                self.deformation = lagrangian_deformation(voigt_strain_tensor(j, e))
                sim.deform(self.deformation)
        st.step = start
        st.time = start * self.dt
        sim.compute(force_rebuild=True)

    def _run_stage(self, k, stop, progress, resume):
        """Integrate stage k to its end, sampling; False when a stop signal ended it early."""
        sim, st, eng = self.sim, self.sim.state, self.sim.engine
        sec = self.sec
        kind, _, _, length = self.stages[k]
        start, end = self.starts[k], self.starts[k + 1]
        eq = int(sec["equilibration_steps"])
        every, born_every = int(sec["sample_every"]), int(sec["born_every"])
        integ = self._integrator(kind)
        cur = self.acc["current"]
        self.deformation = np.eye(3)
        self.reference_volume = self.sim.state.volume
        ref = self.acc.get("reference") if self.rank == 0 else None
        ref_cell = self.comm.bcast(None if ref is None else ref["cell"])
        if ref_cell is not None:       # strain and fluctuation stages: stresses relative to the reference
            self.reference_volume = float(abs(np.linalg.det(ref_cell)))
            if kind == "strain":
                self.deformation = lagrangian_deformation(voigt_strain_tensor(self.stages[k][1],
                                                                              self.stages[k][2]))
        if resume:
            saved = self.sim.restart_state.get("integrator", {})
            if saved:
                integ.load_state_dict(saved)
            for key in list(cur):
                cur[key] = list(np.asarray(cur[key]))
            self._canonicalize()
        else:
            self._begin_stage(k)
            cur.clear()
            cur.update({"step": [], "stress": [], "pk2": [], "virial": [], "temperature": [], "cell": [],
                        "born_step": [], "born": []})
        try:
            integ.setup(eng)
        except BarostatGeometryError as exc:
            raise InputError(f"{sim.input_path}: [elastic] NPT stage: {exc}") from None
        guards = self._guards(kind, integ)
        self.acc["stage"], self.acc["in_progress"] = k, True
        npt_avg_from = length - (length // 2 // self.block) * self.block
        while st.step < end:
            if guards.step(integ, eng):          # a blow-up: the state is back at the last good check
                self._keep_samples_until(st.step)
                self._checkpoint(integ)
                self.guard_message = guards.message
                return "guard"
            rel = st.step - start
            if rel % every == 0:
                if kind == "npt":
                    if rel > npt_avg_from:
                        cur["step"].append(st.step)
                        cur["cell"].append(st.cell.copy())
                elif rel > eq:
                    total, pk2, virial, temp = self._stresses()
                    cur["step"].append(st.step)
                    cur["stress"].append(total)
                    cur["pk2"].append(pk2)
                    cur["virial"].append(virial)
                    cur["temperature"].append(temp)
                    if kind == "fluctuation" and (rel - eq) % born_every == 0:
                        cur["born_step"].append(st.step)
                        cur["born"].append(self._born_sample())
            if rel % self.block == 0 or st.step == end:
                self._canonicalize()
                progress(k, self._stresses()[3])
                signum = self.comm.allreduce(stop.signum, op=MPI.MAX)
                if signum and st.step < end:
                    self._checkpoint(integ)
                    return signal.Signals(signum).name
        self._finish_stage(k)
        self.acc["stage"], self.acc["in_progress"] = k + 1, False
        if k + 1 < len(self.stages):
            self._checkpoint(None)          # every finished stage survives a kill -9 (the last: run() writes it)
            signum = self.comm.allreduce(stop.signum, op=MPI.MAX)
            if signum:
                return signal.Signals(signum).name
        return None

    def _keep_samples_until(self, step):
        """Drop the stage's samples taken after ``step`` (a guard put the state back there)."""
        cur = self.acc["current"]
        for key, steps in (("step", ("step", "stress", "pk2", "virial", "temperature", "cell")),
                           ("born_step", ("born_step", "born"))):
            n = sum(1 for s in cur.get(key, []) if s <= step)
            for name in steps:
                if name in cur:
                    cur[name] = list(cur[name][:n])

    def _finish_stage(self, k):
        kind, j, e, _ = self.stages[k]
        cur = {key: np.array(v) for key, v in self.acc["current"].items()}
        self.acc["current"] = {}
        if kind == "npt":
            cells = cur["cell"]
            n_blocks = len(cells) * int(self.sec["sample_every"]) // self.block
            stats = block_average(cells.reshape(len(cells), 9), n_blocks)
            mean = stats["mean"].reshape(3, 3)
            self.acc["npt"] = {"mean_cell": mean, "mean_cell_error": stats["error"].reshape(3, 3),
                               "inefficiency": stats["inefficiency"].reshape(3, 3), "n_blocks": n_blocks,
                               "step": cur["step"], "cell": cells}
            # map the last configuration affinely onto the mean cell: h_mean = h F^T
            f = (np.linalg.inv(self.sim.state.cell) @ mean).T
            self.sim.deform(f)
            data = self._gather()
            self.acc["reference"] = {"cell": self.sim.state.cell.copy(), "arrays": data,
                                     "step": int(self.sim.state.step)}
            return
        cur.update({"kind": kind, "component": -1 if j is None else j, "strain": e})
        self.acc["results"].append(cur)

    # ------------------------------------------------------------ protocol
    def run(self) -> dict:
        sim, st = self.sim, self.sim.state
        sec = self.sec
        t0 = _time.perf_counter()
        force_t0 = sum(sim.engine.timers.values())
        for line in sim.preamble():
            self.say(f"# {line}")
        self.acc["settings"] = self._signature()
        n_strain = sum(1 for s in self.stages if s[0] == "strain")
        self.say(f"# elastic at {self.temperature} K, {sec['pressure']} bar: method {self.method}; NPT "
                 f"{sec['npt_steps']} steps ({sec['barostat']}, {self.barostat_coupling}), then "
                 + (f"{n_strain} strained NVT runs (strains {self.strains})" if n_strain else "")
                 + (" and " if n_strain and self.method == "both" else "")
                 + ("one NVT fluctuation run" if self.method != "strain" else "")
                 + f" of {sec['equilibration_steps']} + {sec['production_steps']} steps ({sec['thermostat']}), "
                 f"timestep {self.dt} ps, blocks of {self.block} steps; steps {self.acc['start_step']}.."
                 f"{self.end_step}")
        if not sim.restarting:
            if sec["relax"]:                 # NPT starts from the 0 K structure at this pressure
                from .stage_guards import GuardStop
                try:
                    self.run_.relax()
                except GuardStop as exc:     # the [guards] stopped the 0 K relaxation: its last good state
                    st.velocities[:] = 0.0
                    sim.write_checkpoint(state={}, step=0, time_ps=0.0)
                    message = (f"[elastic] {exc.stage}: {exc.message}; checkpoint "
                               f"{self.settings['checkpoint']['file']} (atoms only)")
                    self.say(f"# {message}")
                    return {"stopped_by": "guard", "steps": 0, "message": message,
                            "wall_s": _time.perf_counter() - t0}
                st.step, st.time = self.acc["start_step"], self.acc["start_step"] * self.dt
            from ..symmetry import crystal_class_of_simulation
            self.acc["crystal_class"] = crystal_class_of_simulation(sim)   # before thermal noise
            v = self.settings["velocities"]
            if v["temperature"] <= 0.0:      # start the NPT stage at the target temperature
                st.velocities = initial_velocities(self.comm, st, self.temperature, v["seed"],
                                                   v["zero_momentum"])
        else:
            self.say(f"# restart at step {st.step}, stage {self.acc['stage']}: "
                     f"{self._stage_label(min(self.acc['stage'], len(self.stages) - 1))}")
        session_start = st.step
        t_loop = _time.perf_counter()

        def progress(k, temp):
            done = st.step - session_start
            elapsed = _time.perf_counter() - t_loop
            eta = elapsed / max(done, 1) * (self.end_step - st.step)
            self.say(f"stage {k + 1}/{len(self.stages)} {self._stage_label(k):32s} step {st.step:9d}/"
                     f"{self.end_step}  T {temp:8.2f} K  elapsed {format_hms(elapsed)}  ETA {format_hms(eta)}")

        stop = StopRequested()
        stop.install()
        stopped_by = None
        try:
            first = True
            while self.acc["stage"] < len(self.stages) and stopped_by is None:
                k = self.acc["stage"]
                resume = first and sim.restarting and self.acc["in_progress"]
                first = False
                stopped_by = self._run_stage(k, stop, progress, resume)
        finally:
            stop.uninstall()
        wall = _time.perf_counter() - t0
        force_s = sum(sim.engine.timers.values()) - force_t0
        if stopped_by == "guard":
            message = f"[elastic] {self._stage_label(self.acc['stage'])}: {self.guard_message}"
            self.say(f"# {message}")
            return {"stopped_by": "guard", "steps": int(st.step), "message": message, "wall_s": wall}
        if stopped_by:
            message = (f"stopped by {stopped_by} at step {st.step} ({self._stage_label(self.acc['stage'])}):"
                       f" checkpoint written to {self.settings['checkpoint']['file']}")
            self.say(f"# {message}")
            return {"stopped_by": stopped_by, "steps": int(st.step), "message": message, "wall_s": wall}
        self._checkpoint(None)
        report = self._report(wall, force_s)
        report.update({"stopped_by": None, "steps": int(st.step)})
        return report

    # ------------------------------------------------------------ error of the mean cell
    def _static_tensor(self, minimize):
        """0 K tensor (Voigt, GPa) of the present configuration by central differences of the Cauchy
        stress, ions relaxed in each strained cell if ``relax_ions`` (as the 0 K driver)."""
        sim = self.sim
        base = sim.snapshot()
        c = np.zeros((6, 6))
        for j in range(6):
            stresses = []
            for sign in (1.0, -1.0):
                sim.restore(base)
                sim.deform(np.eye(3) + voigt_strain_tensor(j, sign * CELL_TENSOR_STRAIN))
                minimize() if self.sec["relax_ions"] else sim.compute()
                stresses.append(self.run_._stress_gpa())
            c[:, j] = (stresses[0] - stresses[1]) / (2.0 * CELL_TENSOR_STRAIN)
        sim.restore(base)
        return c

    def _cell_derivative(self):
        """dC/d(eps_v): the reference configuration quenched at the mean cell (ions, fixed cell), then
        the 0 K tensors at volumes V (1 +- CELL_VOLUME_STRAIN), central difference.  Collective;
        leaves the atoms quenched.  Returns (dC, quench steps, quench converged)."""
        sim = self.sim
        ref = self.acc["reference"] if self.rank == 0 else None
        sim.engine.set_cell(self.comm.bcast(ref["cell"] if self.rank == 0 else None))
        self._distribute(ref["arrays"] if self.rank == 0 else None)
        sec = dict(self.sec) | {"method": "fire"}            # `method` names the route at T > 0

        def minimize():
            return minimizer_from_settings(sim, sec, cell="fixed").run()
        quench = minimize()
        base = sim.snapshot()
        tensors = []
        for sign in (1.0, -1.0):
            sim.restore(base)
            sim.deform(np.eye(3) * (1.0 + sign * CELL_VOLUME_STRAIN) ** (1.0 / 3.0))
            minimize() if self.sec["relax_ions"] else sim.compute()
            tensors.append(self._static_tensor(minimize))
        return (tensors[0] - tensors[1]) / (2.0 * CELL_VOLUME_STRAIN), quench.steps, quench.converged

    # ------------------------------------------------------------ analysis
    def _strain_route(self, volume, cell_err):
        res = [r for r in self.acc["results"] if r["kind"] == "strain"]
        n_blocks = int(self.sec["production_steps"]) // self.block
        values, stresses, errors = [[] for _ in range(6)], [[] for _ in range(6)], [[] for _ in range(6)]
        per_strain = []
        for r in res:
            stats = block_average(r["pk2"], n_blocks)
            cauchy = block_average(r["stress"], n_blocks)
            j = int(r["component"])
            values[j].append(float(r["strain"]))
            stresses[j].append(stats["mean"])
            errors[j].append(stats["error"])
            per_strain.append({"component": j, "strain": float(r["strain"]), "stress_GPa": stats["mean"].tolist(),
                               "stress_error_GPa": stats["error"].tolist(),
                               "cauchy_stress_GPa": cauchy["mean"].tolist(),
                               "cauchy_stress_error_GPa": cauchy["error"].tolist(),
                               "statistical_inefficiency": stats["inefficiency"].tolist(),
                               "n_samples": int(len(r["stress"])), "n_blocks": n_blocks,
                               "temperature_K": float(np.mean(r["temperature"]))})
        c, err, intercept = weighted_fit_columns(values, stresses, errors)
        return self._tensor_summary(c, err, cell_err) | {"per_strain": per_strain,
                                                         "intercept_GPa": intercept.tolist()}

    def _fluctuation_route(self, volume, n_atoms, cell_err):
        r = next(x for x in self.acc["results"] if x["kind"] == "fluctuation")
        n_blocks = int(self.sec["production_steps"]) // self.block
        s = np.asarray(r["virial"])
        m_b = block_means(s, n_blocks)
        q_b = block_means(s[:, :, None] * s[:, None, :], n_blocks)
        b_b = block_means(np.asarray(r["born"]), n_blocks)
        kt = BOLTZMANN * self.temperature
        g = EV_PER_A3_TO_GPA
        kinetic = kinetic_elastic_term(n_atoms, self.temperature, volume) * g

        def estimator(m, q, b):
            return fluctuation_tensor(b, m, q, kinetic, volume / g, kt)

        # fluctuation_tensor works in any one stress unit if V/kT carries its inverse: (V/kT)/g per GPa
        c, err = jackknife([m_b, q_b, b_b], estimator)
        born_mean = b_b.mean(axis=0)
        fluct = born_mean - c + kinetic
        stats = block_average(r["stress"], n_blocks)
        out = self._tensor_summary(c, err, cell_err)
        out.update({"born_GPa": (0.5 * (born_mean + born_mean.T)).tolist(),
                    "stress_fluctuation_GPa": (0.5 * (fluct + fluct.T)).tolist(),
                    "kinetic_GPa": kinetic.tolist(), "born_samples": int(len(r["born"])),
                    "mean_stress_GPa": stats["mean"].tolist(), "mean_stress_error_GPa": stats["error"].tolist(),
                    "statistical_inefficiency": stats["inefficiency"].tolist(),
                    "temperature_K": float(np.mean(r["temperature"]))})
        return out

    @staticmethod
    def _symmetrized_error(err):
        err_sym = 0.5 * np.sqrt(err ** 2 + err.T ** 2)
        np.fill_diagonal(err_sym, np.diag(err))
        return err_sym

    def _tensor_summary(self, c, stat_err, cell_err):
        """C, its errors (statistical and the mean cell's, in quadrature) and what follows from C."""
        c = np.asarray(c)
        c_sym = 0.5 * (c + c.T)
        cell_sym = 0.5 * (cell_err + cell_err.T)         # dC/d(eps_v) is symmetric up to round-off
        err = np.sqrt(stat_err ** 2 + cell_err ** 2)
        err_sym = np.sqrt(self._symmetrized_error(stat_err) ** 2 + cell_sym ** 2)
        stable, eig = born_stability(c_sym)
        # the form of C from the structure before MD (the constants are noisy); a checkpoint of an
        # older acemd without it: from the constants, equal within their errors
        kind = self.acc.get("crystal_class") or crystal_class(c_sym, abs_tol=4.0 * float(err_sym.max()))
        return {"C_GPa": c.tolist(), "C_error_GPa": err.tolist(), "C_symmetrized_GPa": c_sym.tolist(),
                "C_symmetrized_error_GPa": err_sym.tolist(), "C_statistical_error_GPa": stat_err.tolist(),
                "C_symmetrized_statistical_error_GPa": self._symmetrized_error(stat_err).tolist(),
                "C_cell_error_GPa": cell_err.tolist(), "asymmetry_GPa": float(np.abs(c - c.T).max()) / 2,
                "moduli_GPa": vrh_moduli(c_sym), "moduli_error_GPa": moduli_errors(c_sym, err_sym),
                "born_stable": stable, "eigenvalues_GPa": eig.tolist(), "crystal_class": kind,
                "independent_constants_GPa": independent_constants(c_sym, kind),
                "independent_constants_error_GPa": independent_constants_errors(err_sym, kind)}

    def _report(self, wall, force_s):
        from .. import __version__
        from ..units import UNITS_LINE
        sim = self.sim
        npt = self.acc["npt"]
        cell = np.asarray(npt["mean_cell"])
        volume = float(abs(np.linalg.det(cell)))
        # the volume's error from the block average of the volume series (the cell components'
        # errors are correlated: fully so under iso coupling)
        volumes = np.abs(np.linalg.det(np.asarray(npt["cell"])))
        vol_stats = block_average(volumes, int(npt["n_blocks"]))
        vol_err = float(vol_stats["error"])
        # C is taken at the mean cell: its volumetric-strain error propagates by dC/d(eps_v)
        strain_err = vol_err / volume
        dc_dstrain, quench_steps, quenched = self._cell_derivative()
        cell_err = np.abs(dc_dstrain) * strain_err
        n_atoms = sim.state.n_atoms_total
        routes = {}
        if self.method in ("strain", "both"):
            routes["strain"] = self._strain_route(volume, cell_err)
        if self.method in ("fluctuation", "both"):
            routes["fluctuation"] = self._fluctuation_route(volume, n_atoms, cell_err)
        primary = routes.get("strain") or routes["fluctuation"]
        sec = self.sec
        # the stress at the mean cell (fluctuation run mean, else the strain fits' intercepts): it
        # should be -pressure; a residual one says the NPT mean cell is off (C is taken there)
        if "fluctuation" in routes:
            ref_stress = np.asarray(routes["fluctuation"]["mean_stress_GPa"])
        else:
            ref_stress = np.asarray(routes["strain"]["intercept_GPa"]).mean(axis=1)
        report = {
            "acemd_version": __version__, "units": "GPa (stresses, elastic constants, moduli); " + UNITS_LINE,
            "input_file": str(sim.input_path), "potential_sha256": sim.potential.file_sha256,
            "n_atoms": n_atoms, "temperature_K": self.temperature, "pressure_bar": sec["pressure"],
            "method": self.method, "strains": self.strains,
            "cell_A": cell.tolist(), "cell_error_A": np.asarray(npt["mean_cell_error"]).tolist(),
            "cell_inefficiency": np.asarray(npt["inefficiency"]).tolist(),
            "volume_A3": volume, "volume_error_A3": vol_err,
            "volume_inefficiency": float(vol_stats["inefficiency"]),
            "cell_error_propagation": {
                "volumetric_strain_error": strain_err, "dC_dvolumetric_strain_GPa": dc_dstrain.tolist(),
                "C_cell_error_GPa": cell_err.tolist(), "volume_strain": CELL_VOLUME_STRAIN,
                "tensor_strain": CELL_TENSOR_STRAIN, "relax_ions": bool(sec["relax_ions"]),
                "quench_steps": int(quench_steps), "quench_converged": bool(quenched),
                "meaning": "C_error = sqrt(statistical^2 + C_cell_error^2), C_cell_error = |dC/d(eps_v)| x "
                           "the mean cell's volumetric-strain error; dC/d(eps_v) of the 0 K tensor at "
                           "the mean cell (quenched reference), central difference in volume"},
            "reference_stress_GPa": ref_stress.tolist(),
            "run_lengths_steps": {k: sec[k] for k in ("npt_steps", "equilibration_steps", "production_steps",
                                                    "block_steps", "sample_every", "born_every")},
            "timestep_ps": self.dt, "thermostat": sec["thermostat"], "barostat": sec["barostat"],
            **{k: primary[k] for k in ("C_GPa", "C_error_GPa", "C_symmetrized_GPa", "C_symmetrized_error_GPa",
                                       "C_statistical_error_GPa", "C_cell_error_GPa",
                                       "asymmetry_GPa", "moduli_GPa", "moduli_error_GPa", "born_stable",
                                       "eigenvalues_GPa", "crystal_class", "independent_constants_GPa",
                                       "independent_constants_error_GPa")},
            "routes": routes, "steps": int(sim.state.step), "wall_s": wall, "force_s": force_s,
        }
        if len(routes) == 2:
            a, b = routes["strain"], routes["fluctuation"]
            diff = np.asarray(a["C_symmetrized_GPa"]) - np.asarray(b["C_symmetrized_GPa"])
            # statistical errors only: both routes share the mean cell and its error
            comb = np.sqrt(np.asarray(a["C_symmetrized_statistical_error_GPa"]) ** 2
                           + np.asarray(b["C_symmetrized_statistical_error_GPa"]) ** 2)
            report["routes_difference_in_errors"] = (np.abs(diff) / np.maximum(comb, 1e-300)).tolist()
        self._write(report)
        self._print(report)
        return report

    def _write(self, report):
        from ..parallel.collective import on_root
        acc, sec = self.acc, self.sec

        def write():
            import json
            import h5py

            from .. import __version__
            with replaced_atomically(sec["report"]) as tmp:
                tmp.write_text(json.dumps(report, indent=2) + "\n")
            with replaced_atomically(sec["data"]) as tmp, h5py.File(tmp, "w") as f:
                f.attrs["acemd_version"] = __version__
                f.attrs["units"] = ("strain: dimensionless (Voigt, engineering shear); stress: GPa; cell: Å; "
                                    "temperature: K; step: MD steps")
                f.attrs["voigt_order"] = "xx yy zz yz xz xy"
                f.attrs["temperature_K"] = self.temperature
                f.attrs["method"] = self.method
                f.attrs["potential_sha256"] = self.sim.potential.file_sha256
                f.attrs["input_text"] = self.sim.input_text
                f["C"] = np.array(report["C_GPa"])
                f["C"].attrs["unit"] = "GPa"
                f["C_error"] = np.array(report["C_error_GPa"])
                f["C_error"].attrs["meaning"] = "sqrt(statistical^2 + C_cell_error^2)"
                f["C_cell_error"] = np.array(report["C_cell_error_GPa"])
                f["dC_dvolumetric_strain"] = np.array(report["cell_error_propagation"]["dC_dvolumetric_strain_GPa"])
                g = f.create_group("npt")
                g["step"] = np.asarray(acc["npt"]["step"], dtype=np.int64)
                g["cell"] = np.asarray(acc["npt"]["cell"])
                g["mean_cell"] = np.asarray(acc["npt"]["mean_cell"])
                g["mean_cell_error"] = np.asarray(acc["npt"]["mean_cell_error"])
                strain = report["routes"].get("strain")
                if strain:
                    ps = strain["per_strain"]
                    f["component"] = np.array([p["component"] for p in ps], dtype=np.int64)
                    f["strain"] = np.array([p["strain"] for p in ps])
                    f["stress"] = np.array([p["stress_GPa"] for p in ps])
                    f["stress"].attrs["unit"] = "GPa"
                    f["stress_error"] = np.array([p["stress_error_GPa"] for p in ps])
                    f["statistical_inefficiency"] = np.array([p["statistical_inefficiency"] for p in ps])
                    f["intercept"] = np.array(strain["intercept_GPa"])     # s_i = intercept_ij + C_ij e_j
                    f["reference_stress"] = np.array(strain["intercept_GPa"]).mean(axis=1)
                series = f.create_group("series")
                for i, r in enumerate(acc["results"]):
                    g = series.create_group(f"{i:03d}_{r['kind']}")
                    g.attrs["kind"] = r["kind"]
                    g.attrs["component"] = int(r["component"])
                    g.attrs["strain"] = float(r["strain"])
                    g["step"] = np.asarray(r["step"], dtype=np.int64)
                    g["stress"] = np.asarray(r["stress"])
                    g["stress"].attrs["meaning"] = "-(K + W)/V, Cauchy, tensile positive"
                    g["pk2_stress"] = np.asarray(r["pk2"])
                    g["pk2_stress"].attrs["meaning"] = "J F^-1 s F^-T, second Piola-Kirchhoff (the fitted one)"
                    g["virial_stress"] = np.asarray(r["virial"])
                    g["temperature"] = np.asarray(r["temperature"])
                    if r["kind"] == "fluctuation":
                        g["born_step"] = np.asarray(r["born_step"], dtype=np.int64)
                        g["born"] = np.asarray(r["born"])
                fl = report["routes"].get("fluctuation")
                if fl:
                    g = f.create_group("fluctuation")
                    for key in ("C_GPa", "C_error_GPa", "born_GPa", "stress_fluctuation_GPa", "kinetic_GPa"):
                        g[key.replace("_GPa", "")] = np.array(fl[key])

        on_root(self.comm, write)

    def _print(self, r):
        def table(name, m, e):
            lines = [f"{name} (GPa, value ± standard error):"]
            for row, erow in zip(m, e):
                lines.append("  " + " ".join(f"{x:8.2f} ±{y:5.2f}" for x, y in zip(row, erow)))
            return lines

        lines = [f"# elastic tensor of {r['n_atoms']} atoms at {r['temperature_K']} K: V = "
                 f"{r['volume_A3'] / r['n_atoms']:.5f} ± {r['volume_error_A3'] / r['n_atoms']:.5f} A^3/atom, "
                 "mean cell (A) " + " ".join(f"{r['cell_A'][i][i]:.5f}±{r['cell_error_A'][i][i]:.5f}"
                                             for i in range(3))]
        cp = r["cell_error_propagation"]
        lines.append(f"mean cell's volumetric-strain error {cp['volumetric_strain_error']:.2e} x |dC/d(eps_v)| "
                     f"(0 K, at the mean cell): up to {np.max(cp['C_cell_error_GPa']):.2f} GPa, added in "
                     "quadrature to C's statistical error (C11, C12, C44 cell part: "
                     + ", ".join(f"{cp['C_cell_error_GPa'][i][j]:.2f}" for i, j in ((0, 0), (0, 1), (3, 3)))
                     + " GPa)")
        lines.append("stress at the mean cell (GPa): [" + " ".join(f"{x:.3f}" for x in r["reference_stress_GPa"])
                     + f"]; target {-r['pressure_bar'] / 1e4:.3f} on the diagonal")
        for name, route in r["routes"].items():
            lines += table(f"C ({name} route) symmetrised", route["C_symmetrized_GPa"],
                           route["C_symmetrized_error_GPa"])
            m, me = route["moduli_GPa"], route["moduli_error_GPa"]
            lines.append(f"  bulk modulus (Hill) {m['bulk_hill']:.2f} ± {me['bulk_hill']:.2f}, shear modulus "
                         f"(Hill) {m['shear_hill']:.2f} ± {me['shear_hill']:.2f}, Young (Hill) "
                         f"{m['young_hill']:.2f} ± {me['young_hill']:.2f} GPa, Poisson {m['poisson_hill']:.4f}"
                         f" ± {me['poisson_hill']:.4f}")
            if route["independent_constants_GPa"]:
                ie = route["independent_constants_error_GPa"]
                lines.append(f"  {route['crystal_class']}: " + ", ".join(
                    f"{k} = {v:.2f} ± {ie[k]:.2f}" for k, v in route["independent_constants_GPa"].items()) + " GPa")
            lines.append(f"  Born stability: {'STABLE' if route['born_stable'] else 'UNSTABLE'}")
            if name == "strain":
                ineff = max(max(p["statistical_inefficiency"]) for p in route["per_strain"])
                lines.append(f"  statistical inefficiency of the stress (samples every {self.sec['sample_every']} "
                             f"steps): up to {ineff:.1f}")
        if "routes_difference_in_errors" in r:
            lines.append("strain - fluctuation: max |difference| = "
                         f"{np.max(r['routes_difference_in_errors']):.2f} combined standard errors")
        lines.append(f"{r['wall_s']:.1f} s wall ({100 * (1 - r['force_s'] / max(r['wall_s'], 1e-12)):.1f} % "
                     "outside force calls)")
        lines.append(f"report: {self.sec['report']}; data: {self.sec['data']}")
        for line in lines:
            self.say(line)
