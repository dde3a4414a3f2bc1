"""Errors of a fitted potential: per structure, and RMSE / MAE / max per set and group.

Energies in meV/atom, forces in meV/Å (per Cartesian component and per force
vector), stresses in GPa.  The predictions come from the written potential through
acemd's own evaluator, so the numbers describe the file that MD will run.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field

import numpy as np

__all__ = ["StructureErrors", "predict", "summarise", "format_table", "write_csv", "group_of"]

EV_PER_A3_TO_GPA = 160.21766208
NEAR_MINIMUM_EV = 1.0          # "near the minimum": within 1 eV/atom of the lowest energy per atom


@dataclass
class StructureErrors:
    index: int                  # position in the dataset (train and test numbered together)
    subset: str                 # "train" | "test"
    name: str
    source: str
    natoms: int
    energy_ref: float           # eV/atom (fit target, reference energies taken off)
    energy_pred: float          # eV/atom
    forces_ref: np.ndarray      # (N, 3) eV/Å
    forces_pred: np.ndarray
    stress_ref: np.ndarray | None = None     # (6,) eV/Å^3
    stress_pred: np.ndarray | None = None
    energy_std: float | None = None          # eV/atom, committee spread
    forces_std: np.ndarray | None = None     # (N, 3) eV/Å
    e_above_min: float = 0.0                 # eV/atom above the lowest reference energy per atom
    extra: dict = field(default_factory=dict)

    @property
    def energy_error(self) -> float:
        return self.energy_pred - self.energy_ref


def group_of(name: str) -> str:
    """Config type of a structure name: the part before the first ':' or '/', at most its first two
    '_'-separated words, without a trailing number ('A1:FHI-aims/...' -> 'A1',
    'fcc_100surf_X110_Y-110_2at' -> 'fcc_100surf', 'md_12' -> 'md')."""
    base = re.split(r"[:/#]", name, maxsplit=1)[0] or name
    words = base.split("_")
    base = "_".join(words[:2])
    return re.sub(r"[_\-.]\d+$", "", base) or base


def predict(calc, structure, index, subset, committee=None) -> StructureErrors:
    """Evaluate one structure with ``calc`` (an ACE calculator) and, if given, committee calculators."""
    atoms = structure.atoms.copy()
    atoms.calc = calc
    n = len(atoms)
    e = atoms.get_potential_energy() / n
    f = atoms.get_forces().copy()
    stress_pred = atoms.get_stress() if (structure.stress is not None and atoms.pbc.all()) else None
    rec = StructureErrors(index=index, subset=subset, name=structure.name, source=structure.source,
                          natoms=n, energy_ref=structure.energy / n, energy_pred=e,
                          forces_ref=np.asarray(structure.forces, float), forces_pred=f,
                          stress_ref=None if stress_pred is None else np.asarray(structure.stress, float),
                          stress_pred=stress_pred)
    if committee:
        es, fs = [], []
        for member in committee:
            atoms.calc = member
            es.append(atoms.get_potential_energy() / n)
            fs.append(atoms.get_forces().copy())
        rec.energy_std = float(np.std(es, ddof=1)) if len(es) > 1 else 0.0
        rec.forces_std = np.std(np.array(fs), axis=0, ddof=1) if len(fs) > 1 else np.zeros_like(f)
    return rec


def _stats(values):
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        return None
    return {"rmse": float(np.sqrt(np.mean(v**2))), "mae": float(np.mean(np.abs(v))),
            "max": float(np.max(np.abs(v))), "count": int(v.size)}


def summarise(records) -> dict:
    """RMSE / MAE / max of energies (meV/atom), forces (meV/Å: components, vectors), stresses (GPa)."""
    if not records:
        return {"structures": 0}
    de = [1e3 * r.energy_error for r in records]
    df = np.concatenate([(r.forces_pred - r.forces_ref).ravel() for r in records]) * 1e3
    dfv = np.concatenate([np.linalg.norm(r.forces_pred - r.forces_ref, axis=1) for r in records]) * 1e3
    ds = [EV_PER_A3_TO_GPA * (r.stress_pred - r.stress_ref) for r in records if r.stress_ref is not None]
    out = {"structures": len(records), "atoms": int(sum(r.natoms for r in records)),
           "energy_meV_per_atom": _stats(de), "force_component_meV_per_A": _stats(df),
           "force_vector_meV_per_A": _stats(dfv)}
    if ds:
        out["stress_GPa"] = _stats(np.concatenate(ds))
    return out


def summary_by_group(records) -> dict:
    """summarise() for all records, per name group, and for those within 1 eV/atom of the minimum."""
    out = {"all": summarise(records)}
    near = [r for r in records if r.e_above_min <= NEAR_MINIMUM_EV]
    out[f"within {NEAR_MINIMUM_EV:g} eV/atom of the minimum"] = summarise(near)
    groups = sorted({group_of(r.name) for r in records})
    if 1 < len(groups) <= 60:
        for g in groups:
            out[f"group {g}"] = summarise([r for r in records if group_of(r.name) == g])
    return out


def format_table(title, table: dict) -> str:
    """Plain-text table of a summary_by_group() result."""
    head = (f"{'':36s} {'n':>6s} | {'E rmse':>8s} {'E mae':>8s} {'E max':>8s} | {'F rmse':>8s} "
            f"{'F mae':>8s} {'F max':>8s} | {'|F| rmse':>8s} {'|F| max':>8s} | {'S rmse':>7s} {'S max':>7s}")
    units = (f"{'':36s} {'':>6s} | {'meV/atom':>26s} | {'meV/Å (components)':>26s} | "
             f"{'meV/Å (vectors)':>17s} | {'GPa':>15s}")
    lines = [f"# {title}", head, units]
    for label, s in table.items():
        if not s or not s.get("structures"):
            lines.append(f"{label[:36]:36s} {0:6d} |")
            continue
        e, fc, fv = s["energy_meV_per_atom"], s["force_component_meV_per_A"], s["force_vector_meV_per_A"]
        st = s.get("stress_GPa")
        stress = f"{st['rmse']:7.3f} {st['max']:7.3f}" if st else f"{'-':>7s} {'-':>7s}"
        lines.append(f"{label[:36]:36s} {s['structures']:6d} | {e['rmse']:8.3f} {e['mae']:8.3f} {e['max']:8.3f} | "
                     f"{fc['rmse']:8.2f} {fc['mae']:8.2f} {fc['max']:8.1f} | {fv['rmse']:8.2f} {fv['max']:8.1f} | "
                     f"{stress}")
    return "\n".join(lines)


def write_csv(path, records):
    """One row per structure: energies (eV/atom), errors (meV/atom, meV/Å, GPa), committee spreads."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "subset", "name", "source", "natoms", "energy_ref_eV_per_atom",
                    "energy_pred_eV_per_atom", "energy_error_meV_per_atom", "e_above_min_eV_per_atom",
                    "force_rmse_meV_per_A", "force_max_meV_per_A", "stress_rmse_GPa",
                    "energy_std_meV_per_atom", "force_std_rms_meV_per_A"])
        for r in records:
            df = (r.forces_pred - r.forces_ref) * 1e3
            srmse = ("" if r.stress_ref is None else
                     f"{EV_PER_A3_TO_GPA * np.sqrt(np.mean((r.stress_pred - r.stress_ref) ** 2)):.6g}")
            w.writerow([r.index, r.subset, r.name, r.source, r.natoms, f"{r.energy_ref:.10f}",
                        f"{r.energy_pred:.10f}", f"{1e3 * r.energy_error:.6g}", f"{r.e_above_min:.6g}",
                        f"{np.sqrt(np.mean(df ** 2)):.6g}", f"{np.abs(df).max() if df.size else 0:.6g}", srmse,
                        "" if r.energy_std is None else f"{1e3 * r.energy_std:.6g}",
                        "" if r.forces_std is None else f"{1e3 * np.sqrt(np.mean(r.forces_std ** 2)):.6g}"])
