"""The TOML input file: parsed, checked key by key, and resolved into typed settings.

Every error names the file and the key path (``md.timestep``) and says what is
expected, before any work starts.  Relative paths are relative to the input
file's folder.  Units are LAMMPS ``metal`` (Å, eV, ps, amu, K, bar).
"""
from __future__ import annotations

import difflib
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """The input file is malformed or has an unknown, misspelt or invalid key."""

    def __init__(self, path, key, problem):
        self.path, self.key, self.problem = str(path), key, problem
        where = f"{path}" + (f": [{key}]" if key else "")
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Key:
    """One allowed key: type(s), default (REQUIRED if none), a check, and its documentation.

    ``doc`` is the meaning (the input reference's "meaning" column, ``acemd --help-input``);
    ``unit`` its unit; ``default_doc`` describes a default that is not a literal value (e.g.
    "last frame"); ``type_doc`` overrides the type shown (e.g. "[int, int, int]").
    """

    types: tuple
    default: Any = None
    required: bool = False
    check: Any = None          # callable(value) -> error text or None
    doc: str = ""
    unit: str = ""
    default_doc: str = ""
    type_doc: str = ""


@dataclass(frozen=True)
class SectionDoc:
    """Documentation of one input section: what it is for, the page that explains it, and, for
    sections whose keys are free (``[masses]``: element = mass), how such a key is written."""

    summary: str
    page: str = ""            # docs/ page (and anchor) with the narrative, e.g. "running-md.md#ensembles"
    free_key: tuple[str, Key] | None = None  # (placeholder name, its Key) for free keys


def positive(v):
    return None if v > 0 else "must be positive"


def non_negative(v):
    return None if v >= 0 else "must be >= 0"


def one_of(*choices):
    def check(v):
        return None if v in choices else f"must be one of {', '.join(map(repr, choices))}"
    check.choices = choices     # listed by the input reference (acemd.docgen)
    return check


def int_list3(v):
    if len(v) != 3 or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v):
        return "must be three positive integers, e.g. [4, 4, 4]"
    return None


NUM = (int, float)
ENSEMBLES = ("nve", "nvt-langevin", "nvt-nose-hoover", "nvt-csvr", "npt-mtk", "npt-crescale",
             "berendsen-equilibration")
BAROSTAT_ENSEMBLES = ("npt-mtk", "npt-crescale", "berendsen-equilibration")
THERMOSTAT_ENSEMBLES = tuple(e for e in ENSEMBLES if e != "nve")
TRAJECTORY_FIELDS = ("position", "velocity", "force", "image", "species", "id", "energy", "gamma")

MINIMIZERS = ("fire", "lbfgs")
CELL_MODES = ("fixed", "iso", "aniso", "triclinic")


def choice_with_suggestion(*choices):
    """Like one_of, with a did-you-mean for misspelt names."""
    def check(v):
        if v in choices:
            return None
        return f"must be one of {', '.join(map(repr, choices))}" + _suggest(str(v), choices)
    return check


def strain_list(v):
    if not v:
        return "must list at least one strain magnitude, e.g. [0.0025, 0.005, 0.01]"
    for x in v:
        if isinstance(x, bool) or not isinstance(x, NUM) or not 0.0 < x <= 0.05:
            return ("every strain magnitude must be a number in (0, 0.05] (strains above 5 % leave "
                    "the linear regime), e.g. [0.0025, 0.005, 0.01]")
    return None


def _positive_table(v):
    for el, k in v.items():
        if isinstance(k, bool) or not isinstance(k, NUM) or not k > 0:
            return f"every value must be a positive number (eV/Å^2), got {el} = {k!r}"
    return None


PHASE_MODES = ("melting_temperature", "transition_temperature", "coexistence_line", "phase_map")
PHASE_ROUTES = ("solid", "liquid")


def _phase_list(v):
    """[free_energy].phases: tables with a name, a route and optionally the [structure] keys."""
    if not v:
        return "must list at least one phase, e.g. [{name = \"fcc\", route = \"solid\"}]"
    names = []
    for i, ph in enumerate(v):
        if not isinstance(ph, dict):
            return f"entry {i + 1} is not a table; write {{name = \"fcc\", route = \"solid\", lattice = ...}}"
        name = ph.get("name")
        if not isinstance(name, str) or not name or not name.replace("_", "").replace("-", "").isalnum():
            return f"entry {i + 1} needs a name (letters, digits, - or _), e.g. name = \"fcc\""
        route = ph.get("route", "solid")
        if route not in PHASE_ROUTES:
            return f"phase {name}: route must be one of {', '.join(map(repr, PHASE_ROUTES))}, got {route!r}"
        names.append(name)
    if len(set(names)) != len(names):
        return f"phase names must differ, got {names}"
    return None


FREE_ENERGY_KEYS = {   # docs/free-energy.md; defaults of the protocol as calphy's where it has them
    "mode": Key((str,), default="solid",
                check=choice_with_suggestion("solid", "liquid", "temperature_sweep", "pressure_sweep",
                                             *PHASE_MODES),
                doc="solid: Frenkel-Ladd to an Einstein crystal (fixed centre of mass); liquid: "
                    "Uhlenbeck-Ford reference, its excess free energy by switching it to the ideal gas; "
                    "temperature_sweep: the route of phase at temperature, then G(T) up to temperature_final "
                    "(reversible scaling or a temperature ramp); pressure_sweep: the route at pressure, then "
                    "G(P) up to pressure_final along an NPT pressure ramp; melting_temperature, "
                    "transition_temperature, coexistence_line, phase_map: phase boundaries from the G(T) "
                    "curves of several phases (docs/phase-diagram.md)"),
    "temperature": Key(NUM, required=True, check=positive, doc="temperature (K)"),
    "pressure": Key(NUM, default=0.0, doc="pressure (bar) of the NPT stage and of G = F + PV"),
    "timestep": Key(NUM, default=0.001, check=positive, doc="timestep (ps)"),
    "skin": Key(NUM, default=1.0, check=positive, doc="Verlet skin (Å)"),
    "damping": Key(NUM, default=0.1, check=positive, doc="Langevin damping time (ps) of every NVT stage"),
    "seed": Key((int,), default=12345, doc="seed of the Langevin and barostat noise"),
    "npt": Key((bool,), default=True,
               doc="find the volume by NPT at temperature and pressure (false: keep the structure's cell)"),
    "npt_steps": Key((int,), default=10000, check=positive,
                     doc="steps of one NPT block; the mean pressure and cell of its second half are used"),
    "npt_max_blocks": Key((int,), default=5, check=positive,
                          doc="NPT blocks before giving up on the pressure tolerance (a warning)"),
    "pressure_tolerance": Key(NUM, default=200.0, check=positive,
                              doc="the NPT stage ends when |<P> - pressure| < max(pressure_tolerance, 3 standard "
                                  "errors of <P>) (bar; block averages, docs/free-energy.md)"),
    "barostat_damping": Key(NUM, default=1.0, check=positive, doc="cell relaxation time (ps), npt-crescale"),
    "compressibility": Key(NUM, default=1e-6, check=positive, doc="compressibility estimate (1/bar), npt-crescale"),
    "spring_steps": Key((int,), default=10000, check=positive,
                        doc="NVT steps for the spring constants k = 3 kB T / <dr^2> (second half averaged)"),
    "spring_constants": Key((dict,), check=_positive_table,
                            doc="given spring constants per element (eV/Å^2), e.g. {Cu = 3.2}: skips the "
                                "NVT stage"),
    "n_iterations": Key((int,), default=3, check=positive,
                        doc="independent equilibrate/switch/equilibrate/switch-back cycles"),
    "equilibration_steps": Key((int,), default=5000, check=non_negative,
                               doc="steps at lambda = 0 and at lambda = 1 before each switch"),
    "switching_steps": Key((int,), default=20000, check=positive,
                           doc="steps of each switch (forward and backward)"),
    "uf_switching_steps": Key((int,), check=positive, unit="steps", default_doc="5 x switching_steps",
                              doc="liquid: steps of each UF <-> ideal-gas switch (a cheap pair term; its "
                                  "dissipation falls as 1/steps: 173/30/17 meV/atom at 1000/5000/10000 steps "
                                  "for Cu at x = 0.67, docs/free-energy.md)"),
    "switching": Key((str,), default="smooth", check=choice_with_suggestion("smooth", "linear"),
                     doc="lambda path: smooth (LAMMPS fix ti/spring function 2) or linear"),
    "max_dissipation": Key(NUM, default=0.005, check=positive,
                           doc="warn when the dissipated energy exceeds this (eV/atom)"),
    "lindemann_threshold": Key(NUM, default=0.3, check=positive,
                               doc="warn that the solid melted when the RMS displacement from the sites "
                                   "exceeds this fraction of the nearest-neighbour distance"),
    "progress_every": Key((int,), default=1000, check=positive, doc="steps between progress lines"),
    "melt": Key((bool,), default=True,
                doc="liquid: melt the structure at melt_temperature first (false: it is already a liquid)"),
    "melt_temperature": Key(NUM, check=positive, doc="liquid: melting temperature of the first stage (K; "
                                                     "default 2 x temperature)"),
    "melt_steps": Key((int,), default=10000, check=positive, doc="liquid: NVT steps at melt_temperature"),
    "quench_steps": Key((int,), default=10000, check=positive, doc="liquid: NVT steps at temperature after melting"),
    "uf_p": Key(NUM, default=50.0, check=positive, doc="liquid: Uhlenbeck-Ford p (energy scale p kB T)"),
    "uf_sigma": Key(NUM, default=1.5, check=positive, doc="liquid: Uhlenbeck-Ford sigma (Å)"),
    "min_distance": Key(NUM, default=1.0, check=positive,
                        doc="liquid: two atoms closer than this (Å) in an ACE stage mean the liquid collapsed"),
    "max_volume_ratio": Key(NUM, default=1.5, check=positive,
                            doc="liquid: NPT volume above this multiple of the starting volume is a runaway"),
    "temperature_final": Key(NUM, check=positive,
                             doc="temperature_sweep: the other end of the sweep; phase_map: the other end of the "
                                 "map (K; required there, != temperature)"),
    "sweep_steps": Key((int,), default=20000, check=positive,
                       doc="sweeps: steps of each sweep (forward and backward)"),
    "sweep_points": Key((int,), default=21, check=positive,
                        doc="sweeps: points of the reported curve, temperature to temperature_final (or "
                            "pressure to pressure_final) inclusive"),
    "phase": Key((str,), check=choice_with_suggestion("solid", "liquid"), default_doc="solid",
                 doc="sweeps: the route that gives G at the start of the sweep, solid (Frenkel-Ladd) or "
                     "liquid (Uhlenbeck-Ford); the sweep continues from that route's state (the phase modes "
                     "set it per phase from phases.route)"),
    "sweep_ensemble": Key((str,), default="npt", check=choice_with_suggestion("npt", "nvt"),
                          doc="temperature_sweep: npt (G(T) at pressure; the barostat is npt-crescale) or nvt "
                              "(F(T) at the volume of temperature)"),
    "sweep_method": Key((str,), default="scaling", check=choice_with_suggestion("scaling", "temperature_ramp"),
                        doc="temperature_sweep: scaling (reversible scaling of the potential, thermostat at "
                            "temperature) or temperature_ramp (fixed potential, thermostat ramped; "
                            "Gibbs-Helmholtz, calphy's tscale)"),
    "pressure_final": Key(NUM, unit="bar",
                          doc="pressure_sweep: the other end of the sweep; coexistence_line: the other end "
                              "of the pressure range (bar; required there, != pressure)"),
    "fit_terms": Key((int,), default=4, check=lambda v: None if 3 <= v <= 5 else "must be 3, 4 or 5",
                     doc="temperature_sweep: terms of the CALPHAD form a + bT + cT lnT + dT^2 + eT^3 fitted to "
                         "each iteration's G(T) for S, H and Cp"),
    "window": Key(NUM, default=100.0, check=positive,
                  doc="melting_temperature, transition_temperature, coexistence_line: half-width (K) of "
                      "the temperature window around temperature (the guess) that the sweeps cover"),
    "attempts": Key((int,), default=4, check=positive,
                    doc="phase boundaries: windows tried (each moved by its width towards the crossing) "
                        "before giving up with the curves written and no temperature"),
    "phases": Key((list,), check=_phase_list, type_doc="list of tables",
                  doc="phase boundaries: [{name = \"fcc\", route = \"solid\" | \"liquid\", ...}], each "
                      "with [structure] keys (file or lattice, element, a, repeat, ...) or none (then "
                      "[structure]); melting_temperature defaults to the solid and liquid of [structure]"),
    "phase_check": Key((bool,), default=True,
                       doc="phase boundaries: before the sweeps, check that every phase exists at its end of "
                           "the window (a liquid's melt, then a short quench and NPT; a short NPT and NVT of "
                           "a solid) and stop within minutes when one melts, crystallises or collapses"),
    "phase_check_steps": Key((int,), default=2000, check=positive, unit="steps",
                             doc="phase boundaries: length of each stage of the phase check (at most the "
                                 "stage's own steps)"),
    "pressure_steps": Key((int,), default=4, check=positive,
                          doc="coexistence_line: Runge-Kutta steps from pressure to pressure_final"),
    "start_temperature": Key(NUM, check=positive, unit="K",
                             doc="coexistence_line: a transition temperature at pressure already computed (an "
                                 "earlier melting_temperature or transition_temperature run): the line starts "
                                 "there and no window is swept (temperature and window are then unused)"),
    "start_temperature_error": Key(NUM, default=0.0, check=non_negative, unit="K",
                                   doc="coexistence_line: the error of start_temperature, carried along the line"),
    "report": Key((str,), default="free_energy.yaml", doc="report (YAML, calphy's keys, eV/atom)"),
    "data": Key((str,), default="free_energy.h5",
                doc="per-step lambda, U_ACE, U_ref and dH/dlambda of every switch (HDF5)"),
    "checkpoint": Key((str,), default="free_energy.ckpt.h5",
                      doc="checkpoint written at the end of every stage (acemd --restart continues there)"),
}


def _minimizer_keys(fmax, stress_tol, max_steps, cell, cell_doc):
    return {
        "method": Key((str,), default="fire", check=choice_with_suggestion(*MINIMIZERS),
                      doc="minimiser: fire (FIRE 2.0, default) or lbfgs (L-BFGS with a backtracking "
                          "line search on the enthalpy)"),
        "cell": Key((str,), default=cell, check=choice_with_suggestion(*CELL_MODES), doc=cell_doc),
        "pressure": Key(NUM, default=0.0, unit="bar",
                        doc="target pressure (hydrostatic) of the cell relaxation"),
        "fmax": Key(NUM, default=fmax, check=positive, unit="eV/Å",
                    doc="converged when the largest force on any atom is below this ..."),
        "stress_tol": Key(NUM, default=stress_tol, check=positive, unit="bar",
                          doc="... and the relaxed stress components deviate from the target by less "
                              "than this"),
        "max_steps": Key((int,), default=max_steps, check=positive, unit="steps",
                         doc="iterations before giving up (an error: the run did not converge)"),
        "max_displacement": Key(NUM, default=0.1, check=positive, unit="Å",
                                doc="largest step of any atom per iteration (LAMMPS dmax)"),
        "skin": Key(NUM, default=1.0, check=non_negative, unit="Å", doc="Verlet skin of the neighbour list"),
    }


ELASTIC_T_METHODS = ("strain", "fluctuation", "both")


def _finite_temperature_elastic_keys():
    """[elastic] keys of the finite-temperature protocol (temperature > 0; acemd.drivers.elastic_t)."""
    return {
        "method": Key((str,), check=choice_with_suggestion(*MINIMIZERS, *ELASTIC_T_METHODS),
                      default_doc="`fire` at 0 K, `strain` at temperature > 0",
                      doc="at 0 K the minimiser (fire or lbfgs); at temperature > 0 the route: strain "
                          "(stress-strain from NVT runs at +-e), fluctuation (Born term and stress "
                          "fluctuations of one NVT run), both"),
        "timestep": Key(NUM, default=0.002, check=positive, unit="ps", doc="MD timestep (temperature > 0)"),
        "npt_steps": Key((int,), default=20000, check=positive, unit="steps",
                         doc="NPT run to the mean cell; the mean is taken over its second half"),
        "equilibration_steps": Key((int,), default=2000, check=non_negative, unit="steps",
                                   doc="NVT steps discarded at the start of each strained run (and of the "
                                       "fluctuation run)"),
        "production_steps": Key((int,), default=20000, check=positive, unit="steps",
                                doc="NVT steps averaged per strained run (and in the fluctuation run); a "
                                    "multiple of block_steps"),
        "block_steps": Key((int,), default=1000, check=positive, unit="steps",
                           doc="block length of the block averages (standard errors); a stop signal takes "
                               "effect at the next block boundary"),
        "sample_every": Key((int,), default=10, check=positive, unit="steps",
                            doc="steps between stress samples (stored in `data`); divides block_steps"),
        "born_every": Key((int,), default=100, check=positive, unit="steps",
                          doc="fluctuation route: steps between Born-term evaluations (12 extra force "
                              "calls each); divides block_steps"),
        "born_strain": Key(NUM, default=1e-4, check=positive,
                           doc="fluctuation route: strain of the finite differences of the Born term"),
        "thermostat": Key((str,), default="langevin", check=choice_with_suggestion("langevin", "csvr"),
                          doc="thermostat of the NVT runs: langevin (BAOAB) or csvr"),
        "thermostat_damping": Key(NUM, default=0.1, check=positive, unit="ps",
                                  doc="thermostat damping time (Langevin 1/friction, CSVR relaxation time; "
                                      "also the NPT stage's thermostat)"),
        "barostat": Key((str,), default="npt-mtk", check=choice_with_suggestion("npt-mtk", "npt-crescale"),
                        doc="NPT integrator to the mean cell: npt-mtk (any coupling) or npt-crescale (iso or "
                            "aniso; with the default damping its mean cell converged more slowly in tests)"),
        "coupling": Key((str,), default="auto", check=choice_with_suggestion("auto", "iso", "aniso", "triclinic"),
                        doc="NPT cell coupling: auto (aniso for orthogonal cells, triclinic otherwise), iso "
                            "(volume only: best for cubic crystals, whose mean cell stays cubic), aniso, "
                            "triclinic (npt-mtk)"),
        "barostat_damping": Key(NUM, default=1.0, check=positive, unit="ps",
                                doc="barostat time (as [barostat].damping)"),
        "compressibility": Key(NUM, default=1e-6, check=positive, unit="1/bar",
                               doc="compressibility estimate: npt-crescale's relaxation rate; npt-mtk: "
                                   "1/compressibility is the bulk modulus of the check that the cell's "
                                   "oscillation is slow enough for barostat_damping and timestep"),
    }


SCHEMA: dict[str, dict[str, Key]] = {
    "structure": {
        "file": Key((str,), doc="structure file read with ASE (extxyz, POSCAR, lammps-data, cif, …)"),
        "format": Key((str,), default_doc="from the extension",
                      doc="ASE format name (e.g. `extxyz`, `vasp`, `lammps-data`), when the extension "
                          "does not tell it"),
        "index": Key((int,), default_doc="last frame", doc="frame of a multi-frame file"),
        "atom_style": Key((str,), default_doc="`atomic`", doc="LAMMPS data files: atom style"),
        "elements": Key((list,), type_doc="list of strings",
                        doc="LAMMPS data files: element of each atom type, in type order"),
        "lattice": Key((str,), check=one_of("fcc", "bcc", "hcp", "diamond", "sc"),
                       doc="crystal to build instead of reading a file"),
        "element": Key((str,), doc="element of the lattice (required with `lattice`)"),
        "a": Key(NUM, check=positive, unit="Å", doc="lattice constant (required with `lattice`)"),
        "c": Key(NUM, check=positive, unit="Å", default_doc="ideal, a·√(8/3)",
                 doc="hcp c lattice constant"),
        "repeat": Key((list,), default=[1, 1, 1], check=int_list3, type_doc="[int, int, int]",
                      doc="unit cells along a, b, c"),
        "cubic": Key((bool,), default=True, doc="conventional cubic cell for cubic lattices"),
        "rattle": Key(NUM, default=0.0, check=non_negative, unit="Å",
                      doc="Gaussian random displacement of every atom (standard deviation)"),
        "rattle_seed": Key((int,), default=0, doc="seed of the rattle"),
    },
    "potential": {
        "file": Key((str,), required=True,
                    doc="ACE potential: `.yace`, `.ace` or pacemaker's B-basis `.yaml`"),
    },
    "masses": {},   # free keys: element -> amu (documented in SECTION_DOCS)
    "velocities": {
        "temperature": Key(NUM, default=0.0, check=non_negative, unit="K",
                           doc="initial temperature: Maxwell-Boltzmann velocities drawn per atom id (so the "
                               "same on any number of ranks) and rescaled to exactly this temperature"),
        "seed": Key((int,), default=12345, doc="random seed of the initial velocities"),
        "zero_momentum": Key((bool,), default=True, doc="remove the centre-of-mass motion"),
    },
    "md": {
        "timestep": Key(NUM, default=0.001, check=positive, unit="ps", doc="integration timestep"),
        "steps": Key((int,), required=True, check=non_negative, unit="steps",
                     doc="number of steps: the run continues until this step number, also after a restart"),
        "ensemble": Key((str,), default="nve", check=one_of(*ENSEMBLES),
                        doc="the integrator and ensemble (see docs/running-md.md); all but `nve` need "
                            "[thermostat], the NPT ones (`npt-mtk`, `npt-crescale`, "
                            "`berendsen-equilibration`) also [barostat]"),
        "skin": Key(NUM, default=1.0, check=non_negative, unit="Å",
                    doc="Verlet skin: the neighbour list is rebuilt when any atom moved more than skin/2"),
    },
    "minimize": dict(_minimizer_keys(1e-3, 1.0, 10000, "fixed",
                                     "cell degrees of freedom (LAMMPS fix box/relax): fixed, iso "
                                     "(volume), aniso (periodic lengths), triclinic (all six strains)"),
                     structure_file=Key((str,), default="relaxed.extxyz",
                                        doc="relaxed structure (extended XYZ)")),
    "elastic": dict(_minimizer_keys(1e-4, 0.1, 5000, "triclinic",
                                    "cell degrees of freedom of the reference relaxation (relax = true)"),
                    temperature=Key(NUM, default=0.0, check=non_negative, unit="K",
                                    doc="0 gives the static tensor; > 0 the isothermal tensor at this "
                                        "temperature from MD (docs/minimize-elastic.md)"),
                    strains=Key((list,), check=strain_list, type_doc="[float, ...]",
                                default_doc="[0.0025, 0.005, 0.01] at 0 K, [0.01] at temperature > 0",
                                doc="strain magnitudes, each in (0, 0.05]; each Voigt strain is applied at "
                                    "+e and -e"),
                    relax=Key((bool,), default=True, doc="relax cell and atoms before straining"),
                    relax_ions=Key((bool,), default=True,
                                   doc="relax atoms in each strained cell (false: clamped-ion tensor)"),
                    report=Key((str,), default="elastic.json", doc="report: C, errors, moduli, stability (JSON, GPa)"),
                    data=Key((str,), default="elastic.h5",
                             doc="per-strain stresses and energies (HDF5)"),
                    **_finite_temperature_elastic_keys()),
    "free_energy": FREE_ENERGY_KEYS,
    "properties": dict(
        compute=Key((list,), default=["eos", "phases", "elastic", "vacancy", "surfaces", "stacking_fault"],
                    type_doc="[string, ...]",
                    doc="properties to compute, any of eos, phases, elastic, vacancy, interstitial, surfaces, "
                        "stacking_fault, phonons, qha; each has an optional sub-table [properties.<name>] "
                        "(docs/properties.md)"),
        **_minimizer_keys(1e-4, 0.1, 5000, "triclinic",
                          "cell degrees of freedom of the relaxation of the input structure (the phase)"),
        parallel_min_atoms=Key((int,), default=256, check=positive,
                               doc="structures with fewer atoms are relaxed whole on one rank, several at a "
                                   "time; larger ones by domain decomposition over all ranks"),
        gamma_threshold=Key(NUM, default=5.0, check=positive,
                            doc="with [extrapolation]: a property whose structures reach a larger max "
                                "extrapolation grade is flagged"),
        report=Key((str,), default="properties.yaml",
                   doc="report: value, reference, difference per property (YAML; .json: JSON)"),
        data=Key((str,), default="properties.h5", doc="raw data of every property (HDF5)"),
        **{name: Key((dict,), type_doc="table", doc=f"settings of {name} (docs/properties.md)")
           for name in ("eos", "phases", "elastic", "vacancy", "interstitial", "surfaces", "stacking_fault",
                        "phonons", "qha")},
        reference=Key((dict,), type_doc="table",
                      doc="the reference: calculator ('module:Class') and kwargs, values, or a pacemaker "
                          "dataset (docs/properties.md)")),
    "thermostat": {
        "temperature": Key(NUM, check=positive, unit="K",
                           default_doc="— (required by every ensemble but `nve`)",
                           doc="target temperature"),
        "damping": Key(NUM, default=0.1, check=positive, unit="ps",
                       doc="damping time: Langevin 1/friction (LAMMPS `damp`), CSVR relaxation time "
                           "(`Tdamp`), Nose-Hoover oscillation period τ (`Tdamp`)"),
        "seed": Key((int,), default_doc="`[velocities].seed`",
                    doc="seed of the Langevin and CSVR random numbers"),
        "zero_momentum": Key((bool,), default=True,
                             doc="`nvt-langevin`: noise with zero total momentum (no centre-of-mass "
                                 "diffusion; 3N−3 thermostatted degrees of freedom)"),
        "chain_length": Key((int,), default=3, check=positive,
                            doc="`nvt-nose-hoover`: thermostats in the chain (LAMMPS `tchain`)"),
        "chain_loops": Key((int,), default=1, check=positive,
                           doc="`nvt-nose-hoover`: sub-steps of each half chain update (LAMMPS `tloop`)"),
        "yoshida_order": Key((int,), default=3, check=one_of(1, 3, 5),
                             doc="`nvt-nose-hoover`: Suzuki-Yoshida order of the sub-steps (LAMMPS uses 1)"),
    },
    "barostat": {
        "pressure": Key(NUM, default=0.0, unit="bar", doc="target pressure (hydrostatic)"),
        "damping": Key(NUM, default=1.0, check=positive, unit="ps",
                       doc="barostat time τ_p: MTK oscillation period (LAMMPS `Pdamp`, barostat mass "
                           "W = (N+1) k_BT τ_p² per strain component), cell-rescaling relaxation time "
                           "of the volume"),
        "coupling": Key((str,), default="iso", check=one_of("iso", "aniso", "triclinic"),
                        doc="`iso`: the volume (cell shape kept); `aniso`: the x, y, z lengths "
                            "independently (non-periodic axes are left alone, so slabs work); "
                            "`triclinic`: the full cell (`npt-mtk` only)"),
        "compressibility": Key(NUM, default=1e-6, check=positive, unit="1/bar",
                               doc="`npt-crescale`, `berendsen-equilibration`: isothermal compressibility "
                                   "estimate (Cu 7e-7, water 4.5e-5); only the relaxation rate depends "
                                   "on it"),
    },
    "thermo": {
        "every": Key((int,), default=100, check=positive, unit="steps", doc="steps between thermo rows"),
        "file": Key((str,), default="acemd.log", doc="log file (the table, also on stdout)"),
    },
    "trajectory": {
        "file": Key((str,), default="trajectory.h5", doc="H5MD trajectory file"),
        "every": Key((int,), default=0, check=non_negative, unit="steps",
                     doc="steps between frames (0: no trajectory)"),
        "fields": Key((list,), default=["position", "velocity", "force", "image", "species", "id"],
                      check=lambda v: None if all(f in TRAJECTORY_FIELDS for f in v)
                      else f"unknown field; allowed: {', '.join(TRAJECTORY_FIELDS)}",
                      type_doc="list of strings",
                      doc="per-atom fields to store, any of " + ", ".join(f"`{f}`" for f in TRAJECTORY_FIELDS)
                          + " (`gamma`, the per-atom extrapolation grade, needs [extrapolation])"),
    },
    "checkpoint": {
        "file": Key((str,), default="checkpoint.h5", doc="checkpoint file (HDF5, written atomically)"),
        "every": Key((int,), default=0, check=non_negative, unit="steps",
                     doc="steps between checkpoints (0: only at the end and on SIGTERM/SIGUSR1)"),
    },
    "parallel": {
        "grid": Key((list,), check=int_list3, type_doc="[int, int, int]",
                    default_doc="chosen to minimise the ghost-shell surface for the cell and rank count",
                    doc="processor grid [px, py, pz], to force it"),
    },
    "extrapolation": {   # LAMMPS pair_style pace/extrapolation + fix pair/dump/halt; defaults as there
        "active_set": Key((str,), required=True,
                          doc="pacemaker active set `.asi` of the B-basis `.yaml` potential (from "
                              "`pace_activeset` or `acemd activeset`)"),
        "every": Key((int,), default=10, check=positive, unit="steps",
                     doc="steps between evaluations of γ; step 0 is always evaluated"),
        "dump_threshold": Key(NUM, default=5.0, check=positive,
                              doc="frames whose max γ exceeds it are appended to `dump_file` "
                                  "(`inf`: never)"),
        "dump_file": Key((str,), default="extrapolative.extxyz",
                         doc="extrapolative structures (extxyz, appended; LAMMPS's recipe calls it "
                             "`extrapolative_structures.dump`)"),
        "stop_threshold": Key(NUM, default=25.0, check=positive,
                              doc="max γ above it: the run writes its checkpoint and ends with exit "
                                  "status 3 (`inf`: never)"),
    },
    "guards": {   # blow-up guards (acemd.guards); generous defaults, docs/errors-and-guards.md
        "enabled": Key((bool,), default=True, doc="check the run for blow-ups"),
        "every": Key((int,), default=10, check=positive, unit="steps", doc="steps between checks"),
        "max_force": Key(NUM, default=100.0, check=positive, unit="eV/Å",
                         doc="stop when the largest force on an atom exceeds this"),
        "min_distance": Key(NUM, default=0.5, check=non_negative, unit="Å",
                            doc="stop when two atoms come closer than this; 0: off"),
        "max_temperature_factor": Key(NUM, default=10.0, check=positive,
                                      doc="stop when the temperature exceeds this times the reference "
                                          "temperature (thermostat target or initial temperature)"),
        "max_drift": Key(NUM, default=0.1, check=positive, unit="eV/atom",
                         doc="stop when the conserved quantity changed by more than this since the start "
                             "(NVE/NVT)"),
        "max_energy_change": Key(NUM, default=10.0, check=positive, unit="eV/atom",
                                 doc="stop when the potential energy per atom moves more than this from its "
                                     "value at the start of the run or stage (a floor and a ceiling)"),
        "min_energy_per_atom": Key(NUM, unit="eV/atom", default_doc="none",
                                   doc="stop when the potential energy per atom falls below this"),
        "max_energy_per_atom": Key(NUM, unit="eV/atom", default_doc="none",
                                   doc="stop when the potential energy per atom rises above this"),
        "min_volume_per_atom": Key(NUM, default=1.0, check=non_negative, unit="Å^3",
                                   doc="stop when the cell volume per atom falls below this (a collapsing cell)"),
        "max_volume_per_atom": Key(NUM, check=positive, unit="Å^3",
                                   default_doc="10 x the volume per atom at the start of the run or stage",
                                   doc="stop when the cell volume per atom rises above this (an exploding cell)"),
        "max_volume_change": Key(NUM, default=0.1, check=positive,
                                 doc="stop when the cell volume changes by more than this fraction per step "
                                     "(a minimiser step; over `every` MD steps, the geometric mean per step)"),
        "max_memory_gib": Key(NUM, check=positive, unit="GiB", default_doc="the node's available memory",
                              doc="memory limit per rank for the estimate made before set-up"),
    },
}

# float keys where inf is a meaningful value (switches a limit off); NaN is refused everywhere
INFINITE_OK = {("extrapolation", "dump_threshold"), ("extrapolation", "stop_threshold"),
               ("guards", "max_force"), ("guards", "max_temperature_factor"), ("guards", "max_drift"),
               ("guards", "max_memory_gib"), ("guards", "max_energy_change"),
               ("guards", "max_volume_per_atom"), ("guards", "max_volume_change")}

PATH_KEYS = {("structure", "file"), ("potential", "file"), ("thermo", "file"),
             ("trajectory", "file"), ("checkpoint", "file"),
             ("extrapolation", "active_set"), ("extrapolation", "dump_file"),
             ("minimize", "structure_file"), ("elastic", "report"), ("elastic", "data"),
             ("free_energy", "report"), ("free_energy", "data"), ("free_energy", "checkpoint"),
             ("properties", "report"), ("properties", "data")}
DRIVER_SECTIONS = ("md", "minimize", "elastic", "free_energy", "properties")


def _suggest(name, options):
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _type_name(types):
    names = {int: "integer", float: "number", str: "string", bool: "true/false", list: "list", dict: "table"}
    return " or ".join(dict.fromkeys(names[t] for t in types))


def parse_config(text: str, path="input.toml") -> dict:
    """Parse and check TOML text; return {section: {key: value}} with defaults filled in."""
    path = Path(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"invalid TOML: {exc}") from None
    base = path.resolve().parent
    out: dict[str, dict] = {}
    for section, value in raw.items():
        if section not in SCHEMA:
            raise ConfigError(path, section, "unknown section" + _suggest(section, SCHEMA)
                              + f"; allowed sections: {', '.join(SCHEMA)}")
        if not isinstance(value, dict):
            raise ConfigError(path, section, "must be a table ([section])")
    for section, keys in SCHEMA.items():
        given = raw.get(section, {})
        resolved = {}
        if section == "masses":
            for el, m in given.items():
                if isinstance(m, bool) or not isinstance(m, NUM) or not (0 < m < math.inf):
                    raise ConfigError(path, f"masses.{el}", f"mass must be a positive number (amu), got {m!r}")
                resolved[el] = float(m)
            out[section] = resolved
            continue
        for key, value in given.items():
            if key not in keys:
                raise ConfigError(path, f"{section}.{key}", "unknown key" + _suggest(key, keys)
                                  + f"; allowed keys: {', '.join(keys)}")
            spec = keys[key]
            if isinstance(value, bool) and bool not in spec.types:
                raise ConfigError(path, f"{section}.{key}", f"expected {_type_name(spec.types)}, got {value!r}")
            if not isinstance(value, spec.types):
                raise ConfigError(path, f"{section}.{key}", f"expected {_type_name(spec.types)}, got {value!r}")
            problem = _non_finite(value, (section, key))
            if problem:
                raise ConfigError(path, f"{section}.{key}", f"{problem} (got {value!r})")
            if spec.check is not None:
                problem = spec.check(value)
                if problem:
                    raise ConfigError(path, f"{section}.{key}", f"{problem} (got {value!r})")
            if float in spec.types and isinstance(value, int):
                value = float(value)
            if (section, key) in PATH_KEYS:
                value = str((base / value).resolve()) if not Path(value).is_absolute() else value
            resolved[key] = value
        for key, spec in keys.items():
            if key not in resolved:
                if spec.required and (section in raw or section == "potential"):
                    raise ConfigError(path, f"{section}.{key}", "required key is missing")
                if spec.default is not None:
                    default = spec.default
                    if (section, key) in PATH_KEYS:
                        default = str((base / default).resolve())
                    resolved[key] = default
        out[section] = resolved
    _check_driver(out, raw, path)
    _check_structure(out["structure"], raw.get("structure", {}), path)
    _check_thermostat(out, raw, path)
    _check_elastic(out, path)
    _check_extrapolation(out, raw, path)
    if out["properties"]:                   # the sub-tables: acemd.properties.settings
        from .properties.settings import resolve
        resolve(out["properties"], raw["properties"], out, path)
    if not Path(out["potential"]["file"]).exists():
        raise ConfigError(path, "potential.file", f"file not found: {out['potential']['file']}")
    if not Path(out["potential"]["file"]).is_file():
        raise ConfigError(path, "potential.file", f"is not a file (a folder?): {out['potential']['file']}; "
                                                  "give the .yace, .ace or .yaml file itself")
    return out


def _non_finite(value, where):
    """NaN anywhere, or inf outside INFINITE_OK, in a number or a list of numbers: the problem text."""
    values = value if isinstance(value, list) else [value]
    for v in values:
        if isinstance(v, float) and math.isnan(v):
            return "must be a number, not NaN"
        if isinstance(v, float) and math.isinf(v) and where not in INFINITE_OK:
            return "must be a finite number, not inf"
    return None


def _check_structure(resolved, given, path):
    has_file, has_lattice = "file" in given, "lattice" in given
    if has_file == has_lattice:
        raise ConfigError(path, "structure", "give either 'file' (a structure file) or 'lattice' "
                                             "(with 'element', 'a', 'repeat'), not both or neither")
    if has_file and not Path(resolved["file"]).exists():
        raise ConfigError(path, "structure.file", f"file not found: {resolved['file']}")
    if has_lattice:
        for key in ("element", "a"):
            if key not in given:
                raise ConfigError(path, f"structure.{key}", "required with structure.lattice")
        if given["lattice"] == "hcp" and "c" not in given:
            resolved["c"] = resolved["a"] * (8.0 / 3.0) ** 0.5


def _check_extrapolation(out, raw, path):
    """[extrapolation] needs its .asi and a B-basis .yaml; the gamma field needs [extrapolation]."""
    if "extrapolation" not in raw:
        out["extrapolation"] = {}
        if "gamma" in out["trajectory"]["fields"]:
            raise ConfigError(path, "trajectory.fields", "field 'gamma' (extrapolation grade) needs an "
                                                          "[extrapolation] section with its active_set")
        return
    ex = out["extrapolation"]
    if not Path(ex["active_set"]).is_file():
        raise ConfigError(path, "extrapolation.active_set", f"file not found: {ex['active_set']}")
    if Path(out["potential"]["file"]).suffix.lower() not in (".yaml", ".yml"):
        raise ConfigError(path, "extrapolation", f"potential.file {out['potential']['file']} is a C-tilde "
                                                 "file; the extrapolation grade needs pacemaker's B-basis "
                                                 ".yaml (the one the active set was built for)")


def _check_driver(out, raw, path):
    """Exactly one driver section; the others stay empty (so settings[name] tells which runs)."""
    found = [s for s in DRIVER_SECTIONS if s in raw]
    if len(found) != 1:
        listed = ", ".join(f"[{s}]" for s in found) if found else "none"
        raise ConfigError(path, "", "the input must name exactly one driver section, one of "
                                    f"{', '.join(f'[{s}]' for s in DRIVER_SECTIONS)}; found {listed}")
    for s in DRIVER_SECTIONS:
        if s not in raw:
            out[s] = {}


def _check_elastic(out, path):
    """[elastic]: defaults that depend on the temperature, and run lengths that give >= 2 blocks."""
    el = out.get("elastic")
    if not el:
        return
    hot = el["temperature"] > 0.0
    el.setdefault("strains", [0.01] if hot else [0.0025, 0.005, 0.01])
    el.setdefault("method", "strain" if hot else "fire")
    if hot and el["method"] in MINIMIZERS:
        raise ConfigError(path, "elastic.method", f"'{el['method']}' is a minimiser; at temperature > 0 "
                                                  f"the method is one of {', '.join(ELASTIC_T_METHODS)}")
    if not hot and el["method"] in ELASTIC_T_METHODS[1:]:
        raise ConfigError(path, "elastic.method", f"'{el['method']}' needs temperature > 0; at 0 K use "
                                                  "fire or lbfgs (the static strain route)")
    if not hot:
        if el["method"] == "strain":
            el["method"] = "fire"
        return
    block = el["block_steps"]
    for key in ("sample_every", "born_every"):
        if block % el[key]:
            raise ConfigError(path, f"elastic.{key}", f"{el[key]} must divide block_steps = {block}")
    if el["production_steps"] % block or el["production_steps"] < 2 * block:
        raise ConfigError(path, "elastic.production_steps",
                          f"{el['production_steps']} steps must be a multiple of block_steps = {block} and "
                          f"give at least 2 blocks (an error needs 2); e.g. production_steps = {20 * block}")
    if el["npt_steps"] // 2 < 2 * block:
        raise ConfigError(path, "elastic.npt_steps",
                          f"{el['npt_steps']} steps: the mean cell is averaged over the second half, which "
                          f"must hold at least 2 blocks of block_steps = {block}; e.g. npt_steps = {8 * block}")


def _check_thermostat(out, raw, path):
    """Thermostatted ensembles need [thermostat].temperature, NPT ones [barostat]; NVE takes neither."""
    if not out["md"]:
        for section in ("thermostat", "barostat"):
            if section in raw:
                driver = next(s for s in DRIVER_SECTIONS if out[s])
                raise ConfigError(path, section, f"applies to [md] runs only; this input runs [{driver}]: "
                                                 f"remove [{section}]")
            out[section] = {}
        return
    ensemble = out["md"]["ensemble"]
    th = out["thermostat"]
    if ensemble in THERMOSTAT_ENSEMBLES:
        if "temperature" not in th:
            raise ConfigError(path, "thermostat.temperature",
                              f"required key is missing: md.ensemble = '{ensemble}' needs the target "
                              "temperature (K), e.g. [thermostat] temperature = 300.0")
        th.setdefault("seed", out["velocities"]["seed"])
    elif "thermostat" not in raw:
        out["thermostat"] = {}
    else:
        raise ConfigError(path, "thermostat", f"md.ensemble = '{ensemble}' uses no thermostat; remove "
                                              "[thermostat] or choose one of "
                                              f"{', '.join(THERMOSTAT_ENSEMBLES)}")
    if ensemble in BAROSTAT_ENSEMBLES:
        if out["barostat"]["coupling"] == "triclinic" and ensemble != "npt-mtk":
            raise ConfigError(path, "barostat.coupling",
                              f"'triclinic' needs md.ensemble = 'npt-mtk' ({ensemble} scales the cell "
                              "lengths only: use 'iso' or 'aniso')")
    elif "barostat" in raw:
        raise ConfigError(path, "barostat", f"md.ensemble = '{ensemble}' keeps the volume fixed; remove "
                                            f"[barostat] or choose one of {', '.join(BAROSTAT_ENSEMBLES)}")
    else:
        out["barostat"] = {}


def load_config(path) -> tuple[dict, str]:
    """Read and check an input file; returns (settings, text)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(path, "", "input file not found") from None
    except IsADirectoryError:
        raise ConfigError(path, "", "is a folder, not an input file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, "", f"not a text (UTF-8) file: byte {exc.start} is 0x{exc.object[exc.start]:02x}; "
                                    "give the TOML input file") from None
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read input file: {exc}") from None
    return parse_config(text, path), text


def format_settings(settings: dict) -> str:
    """The resolved settings as TOML-like text (for ``--check``)."""
    lines = []
    for section, values in settings.items():
        if not values:
            continue
        lines.append(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, str):
                value = f'"{value}"'
            elif isinstance(value, bool):
                value = "true" if value else "false"
            doc = SCHEMA.get(section, {}).get(key)
            comment = ""
            if doc and doc.doc:
                comment = f"   # {doc.doc.replace('`', '')}" + (f" [{doc.unit}]" if doc.unit else "")
            lines.append(f"{key} = {value}{comment}")
        lines.append("")
    return "\n".join(lines)


# What each section is for (input reference, ``acemd --help-input``); a section missing here is
# still documented from its keys.
SECTION_DOCS: dict[str, SectionDoc] = {
    "free_energy": SectionDoc(
        "Driver: absolute free energies by nonequilibrium thermodynamic integration, Frenkel-Ladd for "
        "solids (mode = \"solid\") and the Uhlenbeck-Ford reference for liquids (mode = \"liquid\"); "
        "F(T) by reversible scaling (temperature_sweep); melting and transition temperatures, coexistence "
        "lines and phase maps from the crossings of G(T) curves (docs/phase-diagram.md). "
        "One of [md], [minimize], [elastic], [free_energy].",
        page="free-energy.md"),
    "guards": SectionDoc(
        "Blow-up guards, on by default with generous limits: a run that crosses one stops with a "
        "checkpoint of the last good state, a message naming the step and the cause, and exit status 4.",
        page="errors-and-guards.md"),
    "minimize": SectionDoc(
        "Driver: relax the atoms (and the cell) to a minimum of the enthalpy, write the relaxed structure "
        "and a checkpoint that [md] can --restart from. One of [md], [minimize], [elastic].",
        page="minimize-elastic.md#minimize-relax-atoms-and-cell"),
    "elastic": SectionDoc(
        "Driver: the elastic tensor by finite strains (relax, strain, relax ions, fit), with "
        "Voigt-Reuss-Hill moduli and the Born stability verdict; at temperature > 0 the isothermal tensor "
        "from MD with standard errors (NPT to the mean cell, then NVT strain-stress and/or stress-"
        "fluctuation runs; restartable). One of [md], [minimize], [elastic]. "
        "The minimiser keys apply to every relaxation of the protocol.",
        page="minimize-elastic.md#elastic-the-static-0-k-elastic-tensor"),
    "properties": SectionDoc(
        "Driver: the validation battery (equation of state, phase energies, elastic constants, vacancy, "
        "interstitial, surfaces, stacking faults, phonons, quasi-harmonic free energies) of the structure, "
        "each relaxed with acemd's minimiser, side by side with a reference calculator, values or dataset.",
        page="properties.md"),
    "structure": SectionDoc(
        "The atoms: either a structure `file` (read with ASE) or a `lattice` built from `element`, `a` "
        "and `repeat`, not both."),
    "potential": SectionDoc(
        "The ACE potential. Every element of the structure must be in the potential.",
        page="potentials.md#potential-files"),
    "masses": SectionDoc(
        "Optional atomic masses, one key per element; elements not listed get ASE's standard atomic "
        "masses.",
        free_key=("<Element>", Key(NUM, check=positive, unit="amu", default_doc="ASE's standard atomic mass",
                                   doc="mass of every atom of that element, e.g. `Cu = 63.546`"))),
    "velocities": SectionDoc("Initial velocities (not used when continuing from a checkpoint).",
                             page="running-md.md"),
    "md": SectionDoc("The run: number of steps, timestep, ensemble, neighbour-list skin.",
                     page="running-md.md#ensembles"),
    "thermostat": SectionDoc(
        "Every ensemble but `nve` (the section is an error with `nve`); the NPT ensembles use the "
        "Nose-Hoover keys (`npt-mtk`) or the CSVR ones (`npt-crescale`, `berendsen-equilibration`).",
        page="running-md.md#thermostats"),
    "barostat": SectionDoc(
        "NPT ensembles only (an error with the others). The pressure is always the full virial (ghost "
        "contributions included) plus the kinetic term; the target is hydrostatic.",
        page="running-md.md#barostats"),
    "thermo": SectionDoc("The thermo table, on stdout and in a log file.", page="output-files.md"),
    "trajectory": SectionDoc("The H5MD trajectory.", page="output-files.md"),
    "checkpoint": SectionDoc("Checkpoints, to continue a run with `--restart`.",
                             page="parallel-and-restarts.md"),
    "parallel": SectionDoc("The MPI domain decomposition.", page="parallel-and-restarts.md"),
    "extrapolation": SectionDoc(
        "Optional: the extrapolation grade γ (dimensionless) of every atom during MD, what LAMMPS does "
        "with `pair_style pace/extrapolation`, `fix pair … gamma`, a `dump_modify … skip` dump and "
        "`fix halt`; the defaults are those of the pacemaker/LAMMPS recipe. `[potential].file` must be "
        "the B-basis `.yaml` the active set was built for (a `.yace`/`.ace`, or an active set of another "
        "potential, is an input error, also with `--check`).",
        page="running-md.md#the-extrapolation-grade-during-md"),
}
