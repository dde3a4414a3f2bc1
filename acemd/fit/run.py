"""The ``acemd fit`` pipeline: data -> basis -> normal equations over ranks -> solve -> files and errors.

Stages (each prints what it did; nothing is written before the solve succeeded, and
every output is written to a temporary name and renamed):

1. read and check the data (every bad entry named), reference energies, train/test split, weights;
2. build the basis (pacemaker's B-functions for the input's settings) and its design rows;
3. assemble the normal equations, each rank over its share of the training structures, summed;
4. solve (ridge or Bayesian), optionally draw a committee from the posterior;
5. write ``output_potential.yaml`` (pacemaker's B-basis format) and ``.yace``, the committee and the
   active set when asked;
6. evaluate the written potential on train and test with acemd's evaluator: tables on stdout,
   a metrics YAML and a per-structure CSV.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from .assembly import LossSettings, Progress, assemble, auto_kappa, rank_shares
from .solvers import NormalEquations, solve_bayesian, solve_ridge

__all__ = ["run_fit", "FitResult", "fit", "prepare_data", "build_model"]

UNITS_LINE = "# units: energies eV (errors meV/atom), forces eV/Å (errors meV/Å), stresses GPa"


class FitResult:
    """What a fit produced (returned by :func:`fit`, used by tests and scripts)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def _comm(comm):
    if comm is not None:
        return comm
    from mpi4py import MPI
    return MPI.COMM_WORLD


def _atomic_write_text(path: Path, text: str):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _coefficient_blocks(spec, c):
    """Per-element (nfuncs, 1) coefficients in the spec's order from the design columns' order."""
    return spec.coefficient_blocks(c, order="bbasis")


def prepare_data(settings, say):
    """Structures (train, test), reference energies, weights (energy, force, stress)."""
    from .dataset import apply_reference_energies, load_structures, reference_energies, split_train_test
    from .weights import compute_weights_train_test, stress_weights
    elements = _elements(settings)
    data = settings.data
    structures = load_structures(list(data.filenames), elements, datapath=data.datapath)
    test = (load_structures(list(data.test_filenames), elements, datapath=data.datapath)
            if data.test_filenames else [])
    e_ref, structures = reference_energies(structures, elements, data.reference_energy)
    if test:
        test = apply_reference_energies(test, e_ref) if e_ref else reference_energies(test, elements, None)[1]
    if not test and data.test_size:
        train, test = split_train_test(structures, data.test_size, settings.seed)
    else:
        train = structures
    (ew, fw), _ = compute_weights_train_test(train, test, settings.fit.weighting,
                                             ignore_weights=data.ignore_weights, aug_factor=data.aug_factor)
    sw = stress_weights(train, ew)
    say(f"data: {len(train)} training structures ({sum(s.natoms for s in train)} atoms), "
        f"{len(test)} test structures ({sum(s.natoms for s in test)} atoms)")
    if e_ref:
        say("reference energies (eV): " + ", ".join(f"{k} {v:.6f}" for k, v in e_ref.items()))
    return train, test, e_ref, ew, fw, sw


def _elements(settings):
    return sorted(settings.potential["elements"])


def build_model(settings):
    """(BasisSpec, ACEPotential with zero coefficients, DesignRows)."""
    from ..potential import ACEPotential
    from .basis import build_basis
    from .design import DesignRows
    spec = build_basis(settings.potential, source=str(settings.source))
    zero = [np.zeros((n, 1)) for n in spec.nfuncs]
    potential = ACEPotential.from_model(spec.to_potential(zero), source=f"{settings.source} (basis)")
    return spec, potential, DesignRows(potential)


def fit(settings, comm=None, say=None) -> FitResult:
    """Run the fit (collective over ``comm``); returns the coefficients, solution and errors."""
    comm = _comm(comm)
    rank, size = comm.Get_rank(), comm.Get_size()
    say = say or (lambda line: None)
    t_start = time.perf_counter()

    train, test, e_ref, ew, fw, sw = prepare_data(settings, say)
    spec, potential, design = build_model(settings)
    say(f"basis: {design.ncols} functions (" + ", ".join(
        f"{el} {n}" for el, n in zip(spec.elements, spec.nfuncs)) + ")")

    opts = settings.fit
    kappa = auto_kappa(train) if opts.kappa == "auto" else float(opts.kappa)
    if opts.kappa == "auto":
        say(f"kappa = auto: {kappa:.4f} (energy variance share)")
    loss = LossSettings(kappa=kappa, kappa_stress=float(opts.kappa_stress),
                        stress_components=tuple(opts.stress_component_weights or (1.0,) * 6))

    shares = rank_shares([s.natoms for s in train], size)
    t0, c0 = time.perf_counter(), time.process_time()
    progress = Progress("assembly", say) if rank == 0 else None
    ne_local = assemble(design, train, shares[rank], ew, fw, sw, loss, progress=progress)
    flat = ne_local.packed()
    total = np.empty_like(flat)
    comm.Allreduce(flat, total)
    ne = NormalEquations.from_packed(design.ncols, total)
    t_assembly = time.perf_counter() - t0
    t_assembly_cpu = comm.allreduce(time.process_time() - c0)      # summed over ranks
    t_rows = ne_local.timing["rows_s"]
    t_normal = ne_local.timing["normal_equations_s"]
    say(f"assembly: {ne.nrows} weighted rows in {t_assembly:.1f} s on {size} rank(s) (rank 0: design rows "
        f"{t_rows:.1f} s, normal equations {t_normal:.1f} s; CPU {t_assembly_cpu:.1f} s over all ranks)")

    t0, c0 = time.perf_counter(), time.process_time()
    if opts.solver == "bayesian":
        solution = solve_bayesian(ne)
        say(f"Bayesian regression: alpha {solution.alpha:.4g}, beta {solution.beta:.4g}, "
            f"{solution.effective_parameters:.1f} effective parameters of {design.ncols}, "
            f"{solution.iterations} evidence iterations, log evidence {solution.log_evidence:.6g}")
    else:
        solution = solve_ridge(ne, float(opts.L2_coeffs))
        say(f"ridge (L2 = {opts.L2_coeffs:g}): condition number {solution.condition_number:.3e} "
            "(column-scaled)" + (f"; {solution.dropped_directions} directions below round-off left out "
                                 "(minimum-norm solution: raise L2_coeffs to regularise them)"
                                 if solution.dropped_directions else ""))
    if len(solution.unused_columns):
        say(f"warning: {len(solution.unused_columns)} basis functions have no data (coefficient 0)")
    committee = []
    if getattr(opts, "committee", 0):
        committee = list(solution.committee(int(opts.committee), seed=settings.seed))
    t_solve = time.perf_counter() - t0
    t_solve_cpu = time.process_time() - c0
    say(f"solve: {t_solve:.2f} s")

    return FitResult(settings=settings, spec=spec, design=design, train=train, test=test,
                     reference_energies=e_ref, kappa=kappa, loss=loss, normal_equations=ne,
                     solution=solution, coefficients=solution.coefficients, committee=committee,
                     t_assembly=t_assembly, t_solve=t_solve, t_assembly_cpu=t_assembly_cpu,
                     t_solve_cpu=t_solve_cpu, t_rows=t_rows, t_normal=t_normal, t_start=t_start, comm=comm)


def _metadata(settings, result):
    meta = {str(k): str(v) for k, v in (settings.metadata or {}).items()}
    meta.update({"fitted_by": "acemd fit", "acemd_fit_solver": result.solution.method,
                 "acemd_fit_kappa": f"{result.kappa:.6g}"})
    if result.reference_energies:
        meta["reference_energies_eV"] = " ".join(f"{k}:{v:.8f}" for k, v in result.reference_energies.items())
    return meta


def _potential_text(spec, coefficients, metadata):
    from .basis import format_bbasis_yaml
    return format_bbasis_yaml(spec, _coefficient_blocks(spec, coefficients), metadata=metadata)


def write_outputs(result, say) -> dict:
    """Write the potential files (rank 0); returns their paths."""
    from ..potential.yace_writer import format_yace
    settings, spec = result.settings, result.spec
    out = settings.output
    folder = Path(out.folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = _metadata(settings, result)
    paths = {}
    yaml_path = Path(out.potential_file)
    _atomic_write_text(yaml_path, _potential_text(spec, result.coefficients, meta))
    paths["potential"] = yaml_path
    if out.yace:
        model = spec.to_potential(_coefficient_blocks(spec, result.coefficients))
        yace_path = Path(out.yace_file) if out.yace_file else yaml_path.with_suffix(".yace")
        _atomic_write_text(yace_path, format_yace(model))
        paths["yace"] = yace_path
    for m, c in enumerate(result.committee):
        p = yaml_path.with_name(f"{yaml_path.stem}.committee_{m:02d}.yaml")
        _atomic_write_text(p, _potential_text(spec, c, dict(meta, committee_member=str(m))))
        paths.setdefault("committee", []).append(p)
    say("wrote " + ", ".join(str(p) for k, p in paths.items() if k != "committee")
        + (f" and {len(result.committee)} committee members" if result.committee else ""))
    return paths


def evaluate(result, potential_path, committee_paths=(), say=None):
    """Errors of the written potential on train and test (collective; records gathered on rank 0)."""
    from ..potential import ACEPotential
    from ..potential.calculator import ACECalculator
    from .metrics import predict
    comm = result.comm
    rank, size = comm.Get_rank(), comm.Get_size()
    calc = ACECalculator(ACEPotential(potential_path))
    committee = [ACECalculator(ACEPotential(p)) for p in committee_paths]
    everything = [("train", s) for s in result.train] + [("test", s) for s in result.test]
    shares = rank_shares([s.natoms for _, s in everything], size)
    progress = Progress("errors", say) if (rank == 0 and say) else None
    local = []
    atoms_total = sum(everything[k][1].natoms for k in shares[rank])
    atoms_done = 0
    for done, k in enumerate(shares[rank], start=1):
        subset, s = everything[k]
        local.append(predict(calc, s, k, subset, committee))
        atoms_done += s.natoms
        if progress:
            progress(done, len(shares[rank]), atoms_done, atoms_total)
    gathered = comm.gather(local, root=0)
    if rank != 0:
        return None
    records = sorted((r for part in gathered for r in part), key=lambda r: r.index)
    e_min = min(r.energy_ref for r in records)
    for r in records:
        r.e_above_min = r.energy_ref - e_min
    return records


def report(result, records, paths, say) -> dict:
    """Tables on stdout; metrics YAML and per-structure CSV next to the potential."""
    import yaml
    from .metrics import format_table, summary_by_group, write_csv
    tables = {}
    for subset in ("train", "test"):
        recs = [r for r in records if r.subset == subset]
        if recs:
            tables[subset] = summary_by_group(recs)
            say(format_table(f"{subset} errors of {paths['potential'].name}", tables[subset]))
    sol = result.solution
    metrics = {
        "units": {"energy": "meV/atom", "force": "meV/Å", "stress": "GPa"},
        "potential": str(paths["potential"]),
        "basis_functions": int(result.design.ncols),
        "solver": {"method": sol.method, "condition_number": float(sol.condition_number),
                   "L2_coeffs": float(result.settings.fit.L2_coeffs) if sol.method == "ridge" else None,
                   "alpha": sol.alpha, "beta": sol.beta, "effective_parameters": sol.effective_parameters,
                   "log_evidence": sol.log_evidence, "unused_functions": int(len(sol.unused_columns)),
                   "dropped_directions": int(sol.dropped_directions)},
        "kappa": float(result.kappa), "kappa_stress": float(result.loss.kappa_stress),
        "reference_energies_eV": {k: float(v) for k, v in (result.reference_energies or {}).items()},
        "timing_s": {"assembly": result.t_assembly, "solve": result.t_solve,
                     "assembly_cpu_all_ranks": result.t_assembly_cpu, "solve_cpu": result.t_solve_cpu,
                     "total": time.perf_counter() - result.t_start},
        "errors": tables,
    }
    stem = paths["potential"].with_suffix("")
    out = result.settings.output
    metrics_path = Path(out.metrics_file) if out.metrics_file else stem.with_name(stem.name + "_metrics.yaml")
    _atomic_write_text(metrics_path, yaml.safe_dump(metrics, sort_keys=False))
    csv_path = Path(out.errors_file) if out.errors_file else stem.with_name(stem.name + "_errors.csv")
    write_csv(csv_path.with_name(csv_path.name + ".tmp"), records)
    os.replace(csv_path.with_name(csv_path.name + ".tmp"), csv_path)
    pred_path = stem.with_name(stem.name + "_predictions.npz")
    write_predictions(pred_path, records)
    say(f"wrote {metrics_path}, {csv_path} and {pred_path}")
    return metrics


def write_predictions(path: Path, records):
    """Reference and predicted energies (eV/atom) and forces (eV/Å) for plots (scripts/plot_fit.py)."""
    atom_struct = np.concatenate([np.full(r.natoms, r.index) for r in records])
    nan3 = lambda r: np.full((r.natoms, 3), np.nan)      # noqa: E731
    arrays = dict(
        structure_index=np.array([r.index for r in records]),
        structure_subset=np.array([r.subset for r in records]),
        structure_natoms=np.array([r.natoms for r in records]),
        energy_ref=np.array([r.energy_ref for r in records]),
        energy_pred=np.array([r.energy_pred for r in records]),
        energy_std=np.array([np.nan if r.energy_std is None else r.energy_std for r in records]),
        e_above_min=np.array([r.e_above_min for r in records]),
        atom_structure=atom_struct,
        forces_ref=np.concatenate([r.forces_ref for r in records]),
        forces_pred=np.concatenate([r.forces_pred for r in records]),
        forces_std=np.concatenate([nan3(r) if r.forces_std is None else r.forces_std for r in records]),
        units=np.array("energies eV/atom, forces eV/A"))
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def run_fit(settings, *, check_only: bool = False, restart=None, comm=None) -> int:
    """``acemd fit input.yaml``: the whole pipeline; returns the exit status."""
    comm = _comm(comm)
    rank = comm.Get_rank()

    def say(line):
        if rank == 0:
            print(line, flush=True)

    nonlinear = getattr(settings.fit, "model", "linear") == "nonlinear"
    if restart is not None and not nonlinear:
        raise ValueError("acemd fit: --restart is not used by the linear fit (it solves in one pass, "
                         "in minutes); run the same command again")
    say(f"# acemd fit {settings.source}  ({comm.Get_size()} rank(s), "
        f"{'nonlinear: ' + settings.fit.model_reason if nonlinear else 'linear'})")
    say(UNITS_LINE)
    if nonlinear and not check_only:
        from .nonlinear import run_nonlinear
        return run_nonlinear(settings, comm, say, restart=restart)
    if check_only and nonlinear:
        from .nonlinear import check_nonlinear
        return check_nonlinear(settings, say)
    if check_only:
        train, test, *_ = prepare_data(settings, say)
        spec, _, design = build_model(settings)
        say(f"check: basis of {design.ncols} functions; data read; nothing written")
        return 0
    result = fit(settings, comm=comm, say=say)
    paths = write_outputs(result, say) if rank == 0 else None
    paths = comm.bcast(paths, root=0)
    records = evaluate(result, paths["potential"], paths.get("committee", ()), say=say)
    if rank == 0:
        report(result, records, paths, say)
        if getattr(result.settings.fit, "active_set", False):
            write_active_set_for(result, paths, say)
    comm.Barrier()
    say(f"done in {time.perf_counter() - result.t_start:.1f} s")
    return 0


def write_active_set_for(result, paths, say):
    """The linear active set (.asi) of the fitted potential over the training structures."""
    import tempfile
    from ase.io import write
    from ..potential import ACEPotential
    from ..potential.activeset import build_active_set, write_active_set
    with tempfile.TemporaryDirectory() as tmp:
        train_file = Path(tmp) / "train.extxyz"
        write(train_file, [s.atoms for s in result.train], format="extxyz", parallel=False)
        res = build_active_set(ACEPotential(paths["potential"]), [train_file], log=None)
    asi = paths["potential"].with_suffix(".asi")
    write_active_set(asi, res.matrices)
    paths["asi"] = asi
    say(f"wrote the active set {asi} (" + ", ".join(f"{e.element} {e.size}" for e in res.elements) + ")")
    for w in res.warnings:
        say(f"warning: {w}")


if __name__ == "__main__":      # pragma: no cover
    sys.exit("use: acemd fit input.yaml")
