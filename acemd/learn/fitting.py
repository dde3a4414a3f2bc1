"""The fit of one iteration: ``acemd fit`` on the grown dataset, then the active set of the result.

The loop writes pacemaker's ``input.yaml`` of the iteration (``iter_NNN/fit/input.yaml``: the
user's fit keys with ``data`` pointing at the iteration's dataset and ``output`` into the folder),
so the fit can be rerun by hand with ``acemd fit``.  It runs through ``acemd.fit.run.run_fit``
(whichever model that fits) on one rank, its output in ``fit.log``; then the linear active set is
built from the whole dataset by ``acemd activeset``'s machinery
(``acemd.potential.activeset.build_active_set``).
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import yaml

__all__ = ["fit_input_tree", "check_fit_settings", "run_iteration_fit", "fit_errors", "POTENTIAL_NAME"]

POTENTIAL_NAME = "potential.yaml"


def test_count(test_size: float, n_structures: int) -> int:
    """Structures held out: a fraction (< 1) of the dataset rounded, at least 1 from 4 structures on;
    or a count (>= 1), at most half the dataset."""
    if test_size <= 0 or n_structures < 4:
        return 0
    if test_size < 1:
        return max(1, int(round(test_size * n_structures)))
    return min(int(test_size), n_structures // 2)


def fit_input_tree(settings, dataset: Path, folder: Path, n_structures: int | None = None,
                   previous: Path | None = None) -> dict:
    """pacemaker's input tree of an iteration's fit (``n_structures``: the dataset's size, for the test
    part; ``previous``: the previous iteration's potential, the start of an upfit)."""
    tree = {k: v for k, v in settings.fit_tree.items() if k not in ("data", "output")}
    if settings.upfit and previous is not None:
        tree["potential"] = {"filename": str(previous)}
    data = dict(settings.fit_tree.get("data", {}))
    data["filename"] = str(dataset)
    n_test = test_count(settings.test_size, n_structures if n_structures is not None else 100)
    if n_test:
        data["test_size"] = n_test
    tree["data"] = data
    tree["output"] = {"folder": str(folder), "potential_file": POTENTIAL_NAME}
    return tree


def check_fit_settings(settings):
    """The fit keys checked by ``acemd fit``'s own reader before any work (the learn input stands in
    for the dataset, which does not exist yet); returns the fit's elements.  Raises FitInputError."""
    from ..fit.config import parse_fit_input
    tree = fit_input_tree(settings, settings.source, settings.folder / "check")
    fs = parse_fit_input(tree, settings.source.parent / "learn.fit(input.yaml)")
    if settings.upfit and getattr(fs.fit, "model", "linear") != "nonlinear":
        from .settings import LearnInputError
        raise LearnInputError(settings.source, "learn.fit.upfit", "applies to the nonlinear fit only (these fit "
                                                                  "keys give the linear fit, exact in one pass: "
                                                                  "every iteration refits); remove it")
    from ..fit.basis import build_basis
    build_basis(fs.potential, source=str(settings.source))      # the basis is buildable
    return sorted(fs.potential["elements"])


def run_iteration_fit(settings, dataset: Path, folder: Path, previous: Path | None = None) -> dict | None:
    """Fit the dataset into ``folder``; write the active set; return paths and errors, or None when a
    signal stopped the (nonlinear) fit after its checkpoint: the next call continues from it."""
    from mpi4py import MPI

    from ..fit.config import parse_fit_input
    from ..fit.run import run_fit
    from ..potential.activeset import build_active_set, write_active_set
    folder.mkdir(parents=True, exist_ok=True)
    from .structures import read_frames
    tree = fit_input_tree(settings, dataset, folder, len(read_frames(dataset)), previous)
    input_path = folder / "input.yaml"
    input_path.write_text("# acemd learn: the fit of this iteration; rerun with: acemd fit input.yaml\n"
                          + yaml.safe_dump(tree, sort_keys=False))
    fs = parse_fit_input(tree, input_path)
    ckpt = getattr(fs.output, "checkpoint_file", None)
    resume = str(ckpt) if (ckpt is not None and Path(ckpt).exists()
                           and getattr(fs.fit, "model", "linear") == "nonlinear") else None
    log = folder / "fit.log"
    with open(log, "a" if resume else "w") as fh, contextlib.redirect_stdout(fh):
        status = run_fit(fs, comm=MPI.COMM_SELF, **({"restart": resume} if resume else {}))
        if status == 75:
            return None
        if status != 0:
            raise RuntimeError(f"the fit ended with status {status}: see {log}")
        potential = folder / POTENTIAL_NAME
        res = build_active_set(potential, [dataset], tolerance=settings.active_set_tolerance,
                               log=lambda line: print(line, flush=True))
        for w in res.warnings:
            print(f"warning: {w}", flush=True)
    asi = potential.with_suffix(".asi")
    write_active_set(asi, res.matrices)
    return {"potential": str(potential), "active_set": str(asi), "errors": fit_errors(folder),
            "active_set_sizes": {e.element: e.size for e in res.elements}}


def fit_errors(folder: Path) -> dict:
    """Train/test RMSEs of a fit (meV/atom, meV/Å) from its metrics YAML."""
    found = [p for p in (folder / "metrics.yaml", folder / (Path(POTENTIAL_NAME).stem + "_metrics.yaml"))
             if p.exists()]
    if not found:
        return {}
    path = found[0]
    m = yaml.safe_load(path.read_text())
    out = {"basis_functions": m.get("basis_functions")}
    for subset in ("train", "test"):
        table = (m.get("errors") or {}).get(subset, {}).get("all") or {}
        if table.get("structures"):
            out[subset] = {"structures": table["structures"],
                           "energy_rmse_meV_per_atom": table["energy_meV_per_atom"]["rmse"],
                           "force_rmse_meV_per_A": table["force_component_meV_per_A"]["rmse"]}
            if table.get("stress_GPa"):
                out[subset]["stress_rmse_GPa"] = table["stress_GPa"]["rmse"]
    return out
