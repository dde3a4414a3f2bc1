"""Elastic tensors from stress-strain data: the fit, Voigt-Reuss-Hill moduli, stability, symmetry.

Voigt notation throughout: strain e = (e_xx, e_yy, e_zz, 2e_yz, 2e_xz, 2e_xy),
stress s = (s_xx, s_yy, s_zz, s_yz, s_xz, s_xy), tensile stress positive, and
C_ij = ds_i/de_j (GPa).  The formulas are the textbook ones (Voigt 1928, Reuss
1929, Hill 1952; Born stability as positive definiteness of C, Mouhat and
Coudert, PRB 90, 224104 (2014)).
"""
from __future__ import annotations

import numpy as np

VOIGT_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
VOIGT_NAMES = ("xx", "yy", "zz", "yz", "xz", "xy")


def voigt_strain_tensor(component: int, magnitude: float) -> np.ndarray:
    """The symmetric strain tensor of Voigt strain ``component`` (0-5) with the given magnitude."""
    i, j = VOIGT_PAIRS[component]
    eps = np.zeros((3, 3))
    if i == j:
        eps[i, i] = magnitude
    else:
        eps[i, j] = eps[j, i] = 0.5 * magnitude      # engineering shear strain = magnitude
    return eps


def stress_to_voigt(stress_tensor) -> np.ndarray:
    s = np.asarray(stress_tensor)
    return np.array([s[i, j] for i, j in VOIGT_PAIRS])


def fit_columns(strain_values, stresses):
    """C from stress-strain data, one column per applied Voigt strain.

    ``strain_values[j]``: the magnitudes applied along Voigt strain j (signed),
    ``stresses[j]``: the (n, 6) Voigt stresses at them.  Returns C (6x6, slope
    of a straight-line least-squares fit with intercept, column by column).
    """
    c = np.zeros((6, 6))
    for j in range(6):
        e = np.asarray(strain_values[j], dtype=float)
        s = np.asarray(stresses[j], dtype=float)
        design = np.column_stack([e, np.ones_like(e)])
        coef, *_ = np.linalg.lstsq(design, s, rcond=None)
        c[:, j] = coef[0]
    return c


def central_difference_columns(magnitude_stresses):
    """C from each magnitude alone: {e: (s(+e), s(-e)) per column} -> {e: C (6x6)}."""
    out = {}
    for e, cols in magnitude_stresses.items():
        c = np.zeros((6, 6))
        for j, (plus, minus) in enumerate(cols):
            c[:, j] = (np.asarray(plus) - np.asarray(minus)) / (2.0 * e)
        out[e] = c
    return out


def vrh_moduli(c) -> dict:
    """Voigt, Reuss and Hill bulk and shear moduli, Young's modulus and Poisson's ratio (GPa)."""
    c = np.asarray(c, dtype=float)
    s = np.linalg.inv(c)
    kv = (c[0, 0] + c[1, 1] + c[2, 2] + 2.0 * (c[0, 1] + c[1, 2] + c[0, 2])) / 9.0
    gv = (c[0, 0] + c[1, 1] + c[2, 2] - (c[0, 1] + c[1, 2] + c[0, 2])
          + 3.0 * (c[3, 3] + c[4, 4] + c[5, 5])) / 15.0
    kr = 1.0 / (s[0, 0] + s[1, 1] + s[2, 2] + 2.0 * (s[0, 1] + s[1, 2] + s[0, 2]))
    gr = 15.0 / (4.0 * (s[0, 0] + s[1, 1] + s[2, 2]) - 4.0 * (s[0, 1] + s[1, 2] + s[0, 2])
                 + 3.0 * (s[3, 3] + s[4, 4] + s[5, 5]))
    kh, gh = 0.5 * (kv + kr), 0.5 * (gv + gr)
    young = 9.0 * kh * gh / (3.0 * kh + gh)
    poisson = (3.0 * kh - 2.0 * gh) / (2.0 * (3.0 * kh + gh))
    return {"bulk_voigt": kv, "bulk_reuss": kr, "bulk_hill": kh, "shear_voigt": gv, "shear_reuss": gr,
            "shear_hill": gh, "young_hill": young, "poisson_hill": poisson}


def born_stability(c) -> tuple[bool, np.ndarray]:
    """Stable when the symmetric C is positive definite; returns (verdict, eigenvalues GPa)."""
    eig = np.linalg.eigvalsh(0.5 * (np.asarray(c) + np.asarray(c).T))
    return bool(eig.min() > 0.0), eig


def crystal_class(c, rel_tol=2e-3, abs_tol=0.0) -> str:
    """'cubic', 'hexagonal' (c axis along z) or 'other', judged from the tensor itself.

    Entries equal within ``rel_tol`` of the largest, or within ``abs_tol`` (GPa; e.g. three
    standard errors of a tensor from MD), count as equal."""
    c = np.asarray(c, dtype=float)
    tol = max(rel_tol * float(np.abs(c).max()), abs_tol)

    def close(*vals):
        return max(vals) - min(vals) <= tol

    zero_blocks = [c[i, j] for i in range(6) for j in range(6)
                   if (i < 3 <= j) or (j < 3 <= i) or (i >= 3 and j >= 3 and i != j)]
    if max((abs(v) for v in zero_blocks), default=0.0) > tol:
        return "other"
    if close(c[0, 0], c[1, 1], c[2, 2]) and close(c[0, 1], c[0, 2], c[1, 2]) \
            and close(c[3, 3], c[4, 4], c[5, 5]):
        return "cubic"
    if close(c[0, 0], c[1, 1]) and close(c[0, 2], c[1, 2]) and close(c[3, 3], c[4, 4]) \
            and close(c[5, 5], 0.5 * (c[0, 0] - c[0, 1])):
        return "hexagonal"
    return "other"


def independent_constants(c, kind: str) -> dict:
    """The independent constants of a cubic or hexagonal tensor, averaged over equivalent entries."""
    c = np.asarray(c, dtype=float)
    if kind == "cubic":
        return {"C11": float(np.mean([c[0, 0], c[1, 1], c[2, 2]])),
                "C12": float(np.mean([c[0, 1], c[0, 2], c[1, 2]])),
                "C44": float(np.mean([c[3, 3], c[4, 4], c[5, 5]]))}
    if kind == "hexagonal":
        return {"C11": float(np.mean([c[0, 0], c[1, 1]])), "C12": float(c[0, 1]),
                "C13": float(np.mean([c[0, 2], c[1, 2]])), "C33": float(c[2, 2]),
                "C44": float(np.mean([c[3, 3], c[4, 4]]))}
    return {}


# --------------------------------------------------------------------------- finite temperature
def weighted_fit_columns(strain_values, stresses, errors):
    """C and its standard error from stress-strain data with errors (weighted least squares).

    Like :func:`fit_columns` (slope with intercept, column by column), each
    stress component weighted by 1/error^2; the slope's error is the square
    root of the diagonal of the weighted normal matrix's inverse.  Returns
    (C, error of C, intercepts), each 6x6 (row: stress component, column: strain).
    """
    c, err, intercept = np.zeros((6, 6)), np.zeros((6, 6)), np.zeros((6, 6))
    for j in range(6):
        e = np.asarray(strain_values[j], dtype=float)
        s = np.asarray(stresses[j], dtype=float)
        sig = np.asarray(errors[j], dtype=float)
        design = np.column_stack([e, np.ones_like(e)])
        for i in range(6):
            w = 1.0 / np.maximum(sig[:, i], 1e-300) ** 2
            normal = design.T @ (design * w[:, None])
            cov = np.linalg.inv(normal)
            coef = cov @ (design.T @ (w * s[:, i]))
            c[i, j] = coef[0]
            err[i, j] = np.sqrt(cov[0, 0])
            intercept[i, j] = coef[1]
    return c, err, intercept


def lagrangian_deformation(eta) -> np.ndarray:
    """The symmetric deformation gradient F with F^T F = I + 2 eta (Lagrangian strain eta)."""
    w, v = np.linalg.eigh(np.eye(3) + 2.0 * np.asarray(eta, dtype=float))
    return (v * np.sqrt(w)) @ v.T


def second_pk_stress(virial, deformation, reference_volume) -> np.ndarray:
    """(1/V0) dU/d(eta) of the potential: -F^-1 W F^-T / V0 (eV/Å^3), W the virial in the deformed cell."""
    finv = np.linalg.inv(np.asarray(deformation, dtype=float))
    return -(finv @ np.asarray(virial) @ finv.T) / reference_volume


def kinetic_elastic_term(n_atoms, temperature_k, volume_a3) -> np.ndarray:
    """N k_B T / V (delta_ik delta_jl + delta_il delta_jk) in Voigt form (eV/Å^3): 2 on xx..zz, 1 on shears."""
    from .units import BOLTZMANN
    return n_atoms * BOLTZMANN * temperature_k / volume_a3 * np.diag([2.0, 2.0, 2.0, 1.0, 1.0, 1.0])


def fluctuation_tensor(born_mean, stress_mean, stress_outer_mean, kinetic, volume_a3, kt_ev):
    """C = <B> - (V/kT)(<s s> - <s><s>) + kinetic, all in eV/Å^3 (s: the virial stress)."""
    cov = np.asarray(stress_outer_mean) - np.outer(stress_mean, stress_mean)
    born = np.asarray(born_mean)
    return 0.5 * (born + born.T) - volume_a3 / kt_ev * cov + kinetic


def moduli_errors(c, c_error, samples=2000, seed=0) -> dict:
    """Standard deviations of the VRH moduli when C varies within its errors (Gaussian sampling)."""
    c, c_error = np.asarray(c, dtype=float), np.asarray(c_error, dtype=float)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(samples):
        trial = c + rng.normal(size=(6, 6)) * c_error
        trial = 0.5 * (trial + trial.T)
        try:
            draws.append(list(vrh_moduli(trial).values()))
        except np.linalg.LinAlgError:
            continue
    keys = list(vrh_moduli(0.5 * (c + c.T)).keys())
    std = np.nanstd(np.array(draws), axis=0) if draws else np.full(len(keys), np.nan)
    return {k: float(v) for k, v in zip(keys, std)}


def independent_constants_errors(c_error, kind: str) -> dict:
    """Errors of :func:`independent_constants` (entries averaged as independent estimates)."""
    e = np.asarray(c_error, dtype=float)

    def avg(*vals):
        return float(np.sqrt(np.sum(np.square(vals))) / len(vals))
    if kind == "cubic":
        return {"C11": avg(e[0, 0], e[1, 1], e[2, 2]), "C12": avg(e[0, 1], e[0, 2], e[1, 2]),
                "C44": avg(e[3, 3], e[4, 4], e[5, 5])}
    if kind == "hexagonal":
        return {"C11": avg(e[0, 0], e[1, 1]), "C12": float(e[0, 1]), "C13": avg(e[0, 2], e[1, 2]),
                "C33": float(e[2, 2]), "C44": avg(e[3, 3], e[4, 4])}
    return {}
