"""The nonlinear ``acemd fit``: pacemaker's model class fitted iteratively, step by step up the ladder.

Per ladder step (one step without a ladder): the step's basis becomes a
:class:`~acemd.fit.nonlinear_model.NonlinearModel` whose coefficients carry over from the
previous step (new functions 0, radial coefficients merged with delta_nk, as pacemaker); each of
``fit_cycles`` rounds (the later ones from the best coefficients with noise) runs the optimizer
(``acemd.fit.optimizers``) on the loss of ``acemd.fit.loss``, summed over MPI ranks; an interim
potential is written after every step and the learning curve (test error against the number of
functions) is printed.  Progress every ``display_step`` iterations: loss, train/test RMSE, ETA.

SIGTERM/SIGUSR1 stop the run at the next iteration with a checkpoint (coefficients, optimizer
state, ladder step and cycle, learning curve) and exit 75; ``acemd fit input.yaml --restart
CHECKPOINT`` continues to the same result (bit-identical iterates on the same number of ranks).
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .assembly import auto_kappa, rank_shares
from .loss import DataLoss, LossTerms, Objective
from .nonlinear_model import NonlinearModel

__all__ = ["NonlinearFit", "fit_nonlinear", "FitStopped", "trainable_mask", "linear_start",
           "CHECKPOINT_VERSION"]

CHECKPOINT_VERSION = 1
EXIT_STOPPED = 75


class FitStopped(Exception):
    """A stop signal ended the fit; a checkpoint was written (``path``)."""

    def __init__(self, path, signum, message):
        super().__init__(message)
        self.path = path
        self.signum = signum


@dataclass
class NonlinearFit:
    """What a nonlinear fit produced."""

    settings: object
    model: NonlinearModel
    theta: np.ndarray
    train: list
    test: list
    reference_energies: dict | None
    kappa: float
    curve: list = field(default_factory=list)      # one dict per ladder step
    history: list = field(default_factory=list)    # loss per iteration, all steps
    seconds: float = 0.0
    evaluations: int = 0
    comm: object = None


def trainable_mask(model: NonlinearModel, trainable: dict | None) -> np.ndarray:
    """Per parameter: trained?  ``trainable``: block name -> kinds ("func", "radial"); None or empty: all."""
    n = model.n_coef + model.n_crad
    if not trainable:
        return np.ones(n, dtype=bool)
    spec = model.spec
    mask = np.zeros(n, dtype=bool)
    pos = 0
    for c in range(model.ncols):
        mu = int(model.column_element[c])
        j = c - int(model.design.col_offsets[mu])
        block = spec.blocks[spec.block_of[mu][int(spec.bbasis_order[mu][j])]].name
        k = int(model.coef_mask[c].sum())
        mask[pos:pos + k] = "func" in trainable.get(block, ())
        pos += k
    for pair in model.groups:
        k = int(np.prod(model.crad_shapes[pair]))
        names = {pair[0]} if pair[0] == pair[1] else {" ".join(pair), " ".join(pair[::-1])}
        mask[pos:pos + k] = any("radial" in trainable.get(b, ()) for b in names)
        pos += k
    return mask


def linear_start(model: NonlinearModel, train, ew, fw, sw, kappa, comm, l2=1e-8) -> np.ndarray:
    """Basis coefficients of density 0 from part 1's linear least squares on the same functions
    (radial functions fixed at the model's), other densities 0: the fit's ``init: linear`` start."""
    import copy
    from ..potential import ACEPotential
    from .assembly import LossSettings, assemble
    from .design import DesignRows
    from .solvers import NormalEquations, solve_ridge
    spec = copy.deepcopy(model.spec)
    for b in spec.blocks:
        if b.embedding is not None:
            b.embedding.npot = "FinnisSinclairShiftedScaled"
            b.embedding.fs_parameters = [1.0, 1.0]
            b.embedding.ndensity = 1
    zero = [np.zeros((n, 1)) for n in spec.nfuncs]
    pot = spec.to_potential(zero)
    design = DesignRows(ACEPotential.from_model(pot, source=f"{spec.source} (linear start)"))
    shares = rank_shares([s.natoms for s in train], comm.Get_size())
    ne = assemble(design, train, shares[comm.Get_rank()], ew, fw, sw, LossSettings(kappa=kappa))
    flat = ne.packed()
    total = np.empty_like(flat)
    comm.Allreduce(flat, total)
    sol = solve_ridge(NormalEquations.from_packed(design.ncols, total), l2)
    blocks = spec.coefficient_blocks(sol.coefficients, order="bbasis")
    coef = np.zeros_like(model.coef)
    lin = model._coef_matrix([np.hstack([b, np.zeros((len(b), int(nd) - 1))]) for b, nd in
                              zip(blocks, model.ndensity)])
    coef[:, 0] = lin[:, 0]
    return model.pack(coef=coef)


def _input_hash(settings) -> str:
    return hashlib.sha256((settings.text or str(settings.source)).encode()).hexdigest()[:16]


def _save_checkpoint(path: Path, payload: dict):
    """Write the checkpoint (HDF5, one dataset per entry) to a temporary name and rename it."""
    import h5py
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as h5:
        h5.attrs["format"] = "acemd fit checkpoint"
        for key, value in payload.items():
            value = np.asarray(value)
            h5.create_dataset(key, data=value.astype("S") if value.dtype.kind == "U" else value)
    os.replace(tmp, path)


def _load_checkpoint(path, settings) -> dict:
    import h5py
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--restart {path}: no such checkpoint file")
    try:
        with h5py.File(path, "r") as h5:
            if h5.attrs.get("format") != "acemd fit checkpoint":
                raise ValueError("no 'acemd fit checkpoint' mark")
            data = {k: h5[k][()] for k in h5.keys()}
    except Exception as exc:       # noqa: BLE001 - any unreadable file gets one clear message
        raise ValueError(f"--restart {path}: not an acemd fit checkpoint ({exc})") from None
    data = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in data.items()}
    if int(data.get("version", -1)) != CHECKPOINT_VERSION or "theta" not in data:
        raise ValueError(f"--restart {path}: not an acemd fit checkpoint of this version "
                         f"(version {data.get('version')}, expected {CHECKPOINT_VERSION})")
    if str(data["input_hash"]) != _input_hash(settings):
        raise ValueError(f"--restart {path}: written for another input file (the input changed since the "
                         f"checkpoint: restart with the input it was written for, or start anew without --restart)")
    return data


def _rmse(sums):
    n_e, se, n_f, sf, _ = sums
    return (1e3 * np.sqrt(se / n_e) if n_e else float("nan"), 1e3 * np.sqrt(sf / n_f) if n_f else float("nan"))


def _schedule(settings, say):
    """(list of (step index, spec) to fit, start spec, start coefficients, start crad, fallback)."""
    from .basis import build_basis
    from .basis_file import spec_from_file
    from .ladder import carry_coefficients, ladder_schedule
    opts = settings.fit
    fallback = None
    if settings.potential_file is not None:
        full, coeffs, crad = spec_from_file(settings.potential_file)
        if settings.reset_potential:
            coeffs = [np.zeros_like(c) for c in coeffs]
            crad = None
        else:
            fallback = (full, coeffs)
        say(f"basis: {full.total} functions from {settings.potential_file}"
            + (" (reset to pacemaker's initial coefficients)" if settings.reset_potential else ""))
    else:
        full = build_basis(settings.potential, source=str(settings.source))
        coeffs, crad = None, None
    initial = None
    init_coeffs, init_crad = None, None
    for k, path in enumerate(settings.initial_potentials):
        spec_k, c_k, r_k = spec_from_file(path)
        if initial is None:
            initial, init_coeffs, init_crad = spec_k, c_k, r_k
        else:   # merge: the later file adds its blocks
            from .basis import BasisSpec
            blocks = list(initial.blocks) + [b for b in spec_k.blocks if b.elements not in
                                            {x.elements for x in initial.blocks}]
            merged = BasisSpec(elements=sorted(set(initial.elements) | set(spec_k.elements)),
                               delta_spline_bins=initial.delta_spline_bins, blocks=blocks, source=str(path))
            init_coeffs, init_crad = carry_coefficients(initial, init_coeffs, init_crad, merged,
                                                        fallback=(spec_k, c_k))
            init_crad = {**(r_k or {}), **init_crad}
            initial = merged
    if opts.ladder:
        sched = ladder_schedule(full, opts.ladder_step, opts.ladder_type, initial)
        steps = [(s.index, s.spec) for s in sched.steps]
        start = sched.initial
        if initial is None:
            init_coeffs, init_crad = [np.zeros((0, nd)) for nd in start.ndensity], None
        say(f"ladder ({opts.ladder_type}, step {opts.ladder_step}): {len(steps)} steps from "
            f"{start.total} to {sched.final_total} functions")
        return steps, start, init_coeffs, init_crad, fallback
    if coeffs is None:
        coeffs = [np.zeros((n, nd)) for n, nd in zip(full.nfuncs, full.ndensity)]
    return [(0, full)], full, coeffs, crad, fallback


def fit_nonlinear(settings, comm, say, restart=None, stop=None) -> NonlinearFit:
    """Run the nonlinear fit (collective over ``comm``).  ``stop``: a ``signals.StopRequested``."""
    from .ladder import carry_coefficients
    from .optimizers import EarlyStopping, minimize
    from .run import prepare_data
    t_start = time.perf_counter()
    rank, size = comm.Get_rank(), comm.Get_size()
    opts = settings.fit
    train, test, e_ref, ew, fw, sw = prepare_data(settings, say)
    kappa = auto_kappa(train) if opts.kappa == "auto" else float(opts.kappa)
    if opts.kappa == "auto":
        say(f"kappa = auto: {kappa:.4f} (energy variance share)")
    terms = LossTerms(kappa=kappa, kappa_stress=float(opts.kappa_stress),
                      stress_components=tuple(opts.stress_component_weights or (1.0,) * 6),
                      L1=float(opts.L1_coeffs), L2=float(opts.L2_coeffs), w0=float(opts.w0_rad),
                      w1=float(opts.w1_rad), w2=float(opts.w2_rad))
    steps, start_spec, coeffs, crad, fallback = _schedule(settings, say)
    shares = rank_shares([s.natoms for s in train], size)
    mine = shares[rank]
    test_shares = rank_shares([s.natoms for s in test], size) if test else [[] for _ in range(size)]
    ckpt_path = Path(settings.output.checkpoint_file or Path(settings.output.folder) / "fit.ckpt.h5")
    saved = _load_checkpoint(restart, settings) if restart is not None else None
    first_step = int(saved["step"]) if saved is not None else 0
    curve = [dict(zip(("step", "functions", "train_E", "train_F", "test_E", "test_F", "loss", "iterations",
                       "seconds"), row)) for row in saved["curve"].tolist()] if saved is not None else []
    history = list(saved["history"]) if saved is not None else []
    prev_spec = start_spec
    model = None
    theta = None
    early = EarlyStopping(opts.min_relative_train_loss_per_iter, opts.min_relative_test_loss_per_iter,
                          opts.early_stopping_patience) if (opts.min_relative_train_loss_per_iter or
                                                            opts.min_relative_test_loss_per_iter) else None
    display = int(settings.backend.display_step)
    evaluations = 0
    for step_index, spec in steps:
        if step_index < first_step:
            continue
        t_step = time.perf_counter()
        if saved is not None and step_index == first_step:
            model = NonlinearModel(spec)
            theta = np.array(saved["theta"], dtype=float)
            if len(theta) != model.n_coef + model.n_crad:
                raise ValueError(f"--restart {restart}: the checkpoint's {len(theta)} parameters do not fit step "
                                 f"{step_index}'s basis ({model.n_coef + model.n_crad}): another input?")
        else:
            if model is not None:
                coeffs = model.spec_coefficients(model.unpack(theta)[0])
                crad = model.unpack(theta)[1]
            if prev_spec.total == 0:       # a ladder from nothing: the first step starts from zeros
                zeros = [np.zeros((n, nd)) for n, nd in zip(spec.nfuncs, spec.ndensity)]
                c, r = carry_coefficients(spec, zeros, crad, spec, fallback=fallback)
            else:
                c, r = carry_coefficients(prev_spec, coeffs, crad, spec, fallback=fallback)
            if not coeffs or all(len(x) == 0 for x in coeffs):
                r = {**r, **({} if crad is None else {p: v for p, v in crad.items() if p in r
                                                     and np.shape(v) == np.shape(r[p])})}
            model = NonlinearModel(spec, c, r)
            theta = model.pack()
            if opts.init == "linear" and step_index == 0 and saved is None and not np.any(theta[:model.n_coef]):
                t0 = time.perf_counter()
                theta[:model.n_coef] = linear_start(model, train, ew, fw, sw, kappa, comm)[:model.n_coef]
                say(f"init: linear least-squares start ({time.perf_counter() - t0:.1f} s)")
        prev_spec = spec
        mask = trainable_mask(model, opts.trainable_parameters)
        share = DataLoss(model, [train[k] for k in mine], [ew[k] for k in mine], [fw[k] for k in mine],
                         [sw[k] for k in mine], terms, batch_size=settings.backend.batch_size)
        obj = Objective(model, share, mask, theta, terms, comm, len(train), mine)
        test_obj = None
        if test:
            tk = test_shares[rank]     # test loss: uniform weights (only its RMSEs and early stopping use it)
            tshare = DataLoss(model, [test[k] for k in tk], [1.0 / len(test)] * len(tk),
                              [np.full(test[k].natoms, 1.0 / sum(s.natoms for s in test)) for k in tk],
                              [0.0] * len(tk), terms, batch_size=settings.backend.batch_size)
            test_obj = Objective(model, tshare, mask, theta, terms, comm, len(test), test_shares[rank])
        say(f"step {step_index + 1}/{len(steps)}: {spec.total} functions, {int(mask.sum())} trainable parameters "
            f"of {len(mask)} ({model.n_coef} basis, {model.n_crad} radial)")
        first_cycle = int(saved["cycle"]) if (saved is not None and step_index == first_step) else 0
        for cycle in range(first_cycle, int(opts.fit_cycles)):
            state = None
            if saved is not None and step_index == first_step and cycle == first_cycle and int(saved["has_state"]):
                from .optimizers import OptimizerState
                state = OptimizerState.from_arrays({k[4:]: v for k, v in saved.items() if k.startswith("opt_")})
            elif cycle > 0:
                rng = np.random.default_rng([int(settings.seed), step_index, cycle])
                x = theta[mask]
                if opts.noise_relative_sigma > 0:
                    x = x * (1.0 + opts.noise_relative_sigma * rng.standard_normal(x.shape))
                elif opts.noise_absolute_sigma > 0:
                    x = x + opts.noise_absolute_sigma * rng.standard_normal(x.shape)
                theta = theta.copy()
                theta[mask] = x
                obj.theta = theta.copy()
            t_cycle = time.perf_counter()
            iters_done = [0]

            def progress(st, obj=obj, t_cycle=t_cycle, step_index=step_index, cycle=cycle):
                it = int(st.nit)
                iters_done[0] = it
                asked = None
                if stop is not None and stop.signum:
                    import signal as _signal
                    asked = _signal.Signals(stop.signum).name
                if it % display == 0 or asked:
                    tr = _rmse(obj.sums(st.x))
                    line = (f"step {step_index + 1} cycle {cycle + 1} iter {it}/{opts.maxiter}: loss {st.f:.6e} | "
                            f"train RMSE E {tr[0]:.2f} meV/atom F {tr[1]:.2f} meV/Å")
                    if test_obj is not None:
                        te = _rmse(test_obj.sums(st.x))
                        line += f" | test E {te[0]:.2f} F {te[1]:.2f}"
                    el = time.perf_counter() - t_cycle
                    eta = el / max(it, 1) * max(opts.maxiter - it, 0)
                    line += f" | {el:.0f} s, ETA {eta:.0f} s"
                    say(line)
                if asked or (opts.checkpoint_every and it % opts.checkpoint_every == 0):
                    if rank == 0:
                        _save_checkpoint(ckpt_path, _payload(settings, step_index, cycle, obj.full(st.x), st,
                                                             curve, history, obj.scale))
                    comm.Barrier()
                return asked

            if opts.optimizer == "Adam":      # Jacobi scaling: Adam's equal steps need comparable curvatures
                if state is not None and "scale" in saved:
                    obj.scale = np.array(saved["scale"], dtype=float)
                else:
                    diag = obj.gauss_newton_diagonal(theta, probes=8, seed=int(settings.seed) + 7919 * cycle)
                    floor = 1e-12 * max(float(diag.max()), 1e-300)
                    obj.scale = 1.0 / np.sqrt(np.maximum(diag, floor))
                if test_obj is not None:
                    test_obj.scale = obj.scale
            x0 = obj.variables(theta)
            test_loss = ((lambda x, t=test_obj: float(t.sums(x)[4]))
                         if (test_obj is not None and opts.min_relative_test_loss_per_iter) else None)
            res = minimize(obj, x0 if state is None else None, opts.optimizer, maxiter=int(opts.maxiter),
                           options=dict(opts.optimizer_options or {}), state=state, callback=progress,
                           n_structures=len(train), batch_size=opts.batch_size, seed=int(settings.seed),
                           test_fun=test_loss, display_step=display, early_stopping=early)
            evaluations += obj.evaluations
            use_best = opts.optimizer == "Adam" and res.best_x is not None and res.status != "stopped"
            theta = obj.full(res.best_x if use_best else res.x)
            if res.status == "stopped":
                if rank == 0:
                    _save_checkpoint(ckpt_path, _payload(settings, step_index, cycle, obj.full(res.x), res.state,
                                                         curve, history, obj.scale))
                comm.Barrier()
                raise FitStopped(ckpt_path, stop.signum if stop else 0,
                                 f"stopped by {res.stopped_by} at ladder step {step_index + 1}, cycle {cycle + 1}, "
                                 f"iteration {res.nit}; checkpoint {ckpt_path}")
            history += list(res.history)
            say(f"step {step_index + 1} cycle {cycle + 1}: {res.message} after {res.nit} iterations "
                f"({res.nfev} loss+gradient evaluations, {time.perf_counter() - t_cycle:.1f} s); loss {res.fun:.6e}")
            obj.theta = theta.copy()
            if test_obj is not None:
                test_obj.theta = theta.copy()
        x = obj.variables(theta)
        tr = _rmse(obj.sums(x))
        te = _rmse(test_obj.sums(test_obj.variables(theta))) if test_obj is not None else (float("nan"),
                                                                                             float("nan"))
        curve.append({"step": step_index + 1, "functions": spec.total, "train_E": tr[0], "train_F": tr[1],
                      "test_E": te[0], "test_F": te[1], "loss": float(obj(x)[0]), "iterations": len(history),
                      "seconds": time.perf_counter() - t_step})
        if rank == 0 and len(steps) > 1:
            path = Path(settings.output.folder) / f"interim_potential_ladder_step_{step_index + 1}.yaml"
            from .bbasis_writer import format_tree
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(format_tree(model.to_tree(theta, metadata={"ladder_step": str(step_index + 1)})))
            os.replace(tmp, path)
            say(f"wrote {path}")
        comm.Barrier()
    if len(curve) > 1 or opts.ladder:
        say("learning curve (RMSE: E meV/atom, F meV/Å)")
        say(f"{'step':>5} {'functions':>9} {'train E':>9} {'train F':>9} {'test E':>9} {'test F':>9} {'iters':>7}")
        for row in curve:
            say(f"{int(row['step']):5d} {int(row['functions']):9d} {row['train_E']:9.3f} {row['train_F']:9.3f} "
                f"{row['test_E']:9.3f} {row['test_F']:9.3f} {int(row['iterations']):7d}")
    return NonlinearFit(settings=settings, model=model, theta=theta, train=train, test=test,
                        reference_energies=e_ref, kappa=kappa, curve=curve, history=history,
                        seconds=time.perf_counter() - t_start, evaluations=evaluations, comm=comm)


def _payload(settings, step, cycle, theta, state, curve, history, scale=None) -> dict:
    """The checkpoint: where the fit is (step, cycle), θ, the optimizer state of the running cycle, the
    learning curve and the loss history of the finished cycles."""
    out = {"version": np.array(CHECKPOINT_VERSION), "input_hash": np.array(_input_hash(settings)),
           "step": np.array(step), "cycle": np.array(cycle), "theta": np.asarray(theta, dtype=float),
           "has_state": np.array(0 if state is None else 1),
           "curve": np.array([[r["step"], r["functions"], r["train_E"], r["train_F"], r["test_E"], r["test_F"],
                               r["loss"], r["iterations"], r["seconds"]] for r in curve], dtype=float).reshape(-1, 9),
           "history": np.asarray(history, dtype=float)}
    if state is not None:
        out.update({f"opt_{k}": v for k, v in state.to_arrays().items()})
    if scale is not None:
        out["scale"] = np.asarray(scale, dtype=float)
    return out


def write_outputs(result: NonlinearFit, say) -> dict:
    """``output_potential.yaml`` (pacemaker's B-basis format) and ``.yace`` of the fitted model (rank 0)."""
    from ..potential.yace_writer import format_yace
    from .bbasis_writer import format_tree
    from .run import _atomic_write_text
    settings = result.settings
    out = settings.output
    Path(out.folder).mkdir(parents=True, exist_ok=True)
    meta = {str(k): str(v) for k, v in (settings.metadata or {}).items()}
    meta.update({"fitted_by": "acemd fit (nonlinear)", "acemd_fit_optimizer": str(settings.fit.optimizer),
                 "acemd_fit_kappa": f"{result.kappa:.6g}"})
    if result.reference_energies:
        meta["reference_energies_eV"] = " ".join(f"{k}:{v:.8f}" for k, v in result.reference_energies.items())
    model = result.model
    model.to_tree(result.theta)                 # the fitted radial coefficients into the basis' bonds
    spec = model.spec
    if settings.fit.repulsion == "auto":
        from .repulsion import complete_pair_distances, shortest_pair_distances, with_auto_repulsion
        cutoff = settings.cutoff or max(b.bond.rcut for b in spec.blocks if b.bond is not None)
        distances = complete_pair_distances(shortest_pair_distances(result.train, cutoff), spec.elements)
        spec = with_auto_repulsion(spec, distances)
        say("repulsion: auto: ZBL below the shortest distance of each pair in the data: " + ", ".join(
            f"{'-'.join(p)} {d:.3f} Å" for p, d in sorted(distances.items())))
    coeffs = model.spec_coefficients(model.unpack(result.theta)[0])
    paths = {"potential": Path(out.potential_file)}
    _atomic_write_text(paths["potential"], format_tree(spec.to_tree(coeffs, metadata=meta)))
    if out.yace:
        paths["yace"] = Path(out.yace_file) if out.yace_file else paths["potential"].with_suffix(".yace")
        _atomic_write_text(paths["yace"], format_yace(spec.to_potential(coeffs)))
    say("wrote " + ", ".join(str(p) for p in paths.values()))
    return paths


def report(result: NonlinearFit, records, paths, say) -> dict:
    """Error tables on stdout; metrics YAML, per-structure CSV and predictions next to the potential."""
    import yaml
    from .metrics import format_table, summary_by_group, write_csv
    from .run import _atomic_write_text, write_predictions
    tables = {}
    for subset in ("train", "test"):
        recs = [r for r in records if r.subset == subset]
        if recs:
            tables[subset] = summary_by_group(recs)
            say(format_table(f"{subset} errors of {paths['potential'].name}", tables[subset]))
    opts = result.settings.fit
    metrics = {
        "units": {"energy": "meV/atom", "force": "meV/Å", "stress": "GPa"},
        "potential": str(paths["potential"]),
        "basis_functions": int(result.model.spec.total),
        "parameters": {"basis": int(result.model.n_coef), "radial": int(result.model.n_crad)},
        "optimizer": {"method": str(opts.optimizer), "maxiter": int(opts.maxiter), "fit_cycles": int(opts.fit_cycles),
                      "iterations": len(result.history), "loss_gradient_evaluations": int(result.evaluations),
                      "final_loss": float(result.history[-1]) if result.history else None},
        "kappa": float(result.kappa), "kappa_stress": float(opts.kappa_stress),
        "learning_curve": [{k: (float(v) if isinstance(v, (float, np.floating)) else int(v)) for k, v in row.items()}
                           for row in result.curve],
        "reference_energies_eV": {k: float(v) for k, v in (result.reference_energies or {}).items()},
        "timing_s": {"fit": float(result.seconds)},
        "errors": tables,
    }
    stem = paths["potential"].with_suffix("")
    out = result.settings.output
    metrics_path = Path(out.metrics_file) if out.metrics_file else stem.with_name(stem.name + "_metrics.yaml")
    _atomic_write_text(metrics_path, yaml.safe_dump(metrics, sort_keys=False, allow_unicode=True))
    csv_path = Path(out.errors_file) if out.errors_file else stem.with_name(stem.name + "_errors.csv")
    write_csv(csv_path.with_name(csv_path.name + ".tmp"), records)
    os.replace(csv_path.with_name(csv_path.name + ".tmp"), csv_path)
    pred_path = stem.with_name(stem.name + "_predictions.npz")
    write_predictions(pred_path, records)
    say(f"wrote {metrics_path}, {csv_path} and {pred_path}")
    return metrics


def run_nonlinear(settings, comm, say, restart=None) -> int:
    """``acemd fit`` for the nonlinear model: fit, write, evaluate the written file; 75 when stopped."""
    from ..signals import StopRequested
    from .run import evaluate
    rank = comm.Get_rank()
    stop = StopRequested()
    stop.install()
    try:
        try:
            result = fit_nonlinear(settings, comm, say, restart=restart, stop=stop)
        except FitStopped as exc:
            prefix = f"mpiexec -n {comm.Get_size()} " if comm.Get_size() > 1 else ""
            say(f"acemd fit: {exc}")
            say(f"continue with: {prefix}acemd fit {settings.source} --restart {exc.path}")
            return EXIT_STOPPED
    finally:
        stop.uninstall()
    paths = write_outputs(result, say) if rank == 0 else None
    paths = comm.bcast(paths, root=0)
    records = evaluate(result, paths["potential"], (), say=say)
    if rank == 0:
        report(result, records, paths, say)
    comm.Barrier()
    say(f"done in {result.seconds:.1f} s of fitting")
    return 0


def check_nonlinear(settings, say) -> int:
    """``acemd fit --check`` of a nonlinear fit: the data, the ladder and the last step's model; nothing written."""
    from .run import prepare_data
    prepare_data(settings, say)
    steps, *_ = _schedule(settings, say)
    model = NonlinearModel(steps[-1][1])
    say(f"check: final basis of {steps[-1][1].total} functions, {model.n_coef} basis and {model.n_crad} radial "
        f"coefficients in {len(steps)} step(s); data read; nothing written")
    return 0
