"""pacemaker's regularisation terms of the nonlinear fit's loss, as (value, gradient) over numpy arrays.

Coefficient penalties (``fit.loss.L1_coeffs``, ``L2_coeffs``) on the basis-function coefficients
c (every function and density; not the radial coefficients, not the embedding)::

    L1 sum |c| + L2 sum c^2,   gradient L1 sign(c) + 2 L2 c   (sign(0) = 0)

Radial smoothness (``w0_rad``, ``w1_rad``, ``w2_rad``) on the radial functions
R_nl(r) = sum_k c_nlk g_k(r) of every bond, with g_k the radial basis as pacemaker's TensorFlow model
has it (its outer cutoff; no inner cutoff; for ChebExpCos without the evaluators' extra cos switch over
the last dcut before rcut): on pacemaker's grid of 100 points r_j from 1e-10 Å to rcut_max - 1e-5 Å (rcut_max the largest
bond cutoff, spacing dr)::

    P_d = sum_b m_b / M  *  dr / rcut_b^2  *  sum_j r_j^2 sum_{n,l} |d^d R_b,nl / dr^d (r_j)|,  d = 0, 1, 2

a sum of absolute values (not squares), weighted by r^2 and normalised by the bond's own cutoff; the
loss gets w0_rad P0 + w1_rad P1 + w2_rad P2.  pacemaker's TensorFlow model averages over the ordered
element pairs, a pair A-B and its mirror sharing one set of coefficients: the unordered bond b enters
with m_b = 1 (A-A) or 2 (A-B) over M = sum of m_b (the number of ordered pairs).  The gradient of
|x| is sign(x), 0 at 0.  pacemaker's total loss adds these terms once per evaluation, on top of the
normalised energy and force terms (its per-batch factors 1/n_batches sum to 1).

Differences from pacemaker, both below its own precision: d^2 g/dr^2 is a fourth-order central
difference of the analytic dg/dr (relative error ~1e-10; pacemaker differentiates twice
automatically), and pacemaker's starting coefficients 1e-32 instead of 0 give sign +1 in its first L1
gradient where acemd's sign(0) = 0.

The radial coefficients are taken per bond as a mapping (unordered pair -> c[n, l, k] of shape
(nradmax, lmax+1, nradbase), acemd.fit.nonlinear_model's layout), a list, or one array
(nbonds, nradmax, lmax+1, nradbase); gradients come back in the same form.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..potential.model import Bond
from ..potential.radial import radial_basis

__all__ = ["coefficient_penalty", "SmoothnessGrid", "smoothness_grids", "smoothness_terms", "radial_smoothness",
           "GRID_POINTS", "GRID_START", "GRID_END_GAP"]

GRID_POINTS = 100          # pacemaker's grid of the smoothness terms
GRID_START = 1e-10         # Å
GRID_END_GAP = 1e-5        # Å below the largest cutoff


def coefficient_penalty(c, l1: float, l2: float) -> tuple[float, np.ndarray]:
    """``l1 * sum|c| + l2 * sum c^2`` over the coefficients ``c`` (any shape) and its gradient
    ``l1 * sign(c) + 2 * l2 * c`` (same shape; sign(0) = 0)."""
    c = np.asarray(c, dtype=float)
    value = float(l1) * float(np.abs(c).sum()) + float(l2) * float(np.square(c).sum())
    return value, float(l1) * np.sign(c) + 2.0 * float(l2) * c


@dataclass(frozen=True)
class SmoothnessGrid:
    """One bond's radial basis on the smoothness grid: ``r`` (npts,) Å, spacing ``dr`` Å, ``g`` (3, npts,
    nradbase): g_k, dg_k/dr, d2g_k/dr2 (1, 1/Å, 1/Å^2 per unit of g); ``scale`` = m_b / M * dr / rcut_b^2
    (the factor of the bond's sum in every P_d)."""

    r: np.ndarray
    dr: float
    g: np.ndarray
    scale: float

    @property
    def nradbase(self) -> int:
        return self.g.shape[2]


def _as_model_bond(bond) -> Bond:
    """A model Bond with the radial basis of ``bond`` (acemd.fit.basis.BondSpec or a model Bond) as
    pacemaker's TensorFlow model has it on the smoothness grid: no inner cutoff, and ChebExpCos without
    the evaluators' extra cos switch over [rcut - dcut, rcut] (dcut 0)."""
    name = getattr(bond, "radbasename", None) or getattr(bond, "radbase")
    nradbase = int(bond.nradbase)
    return Bond(radbasename=name, radparameters=list(bond.radparameters), nradmax=int(bond.nradmax),
                lmax=int(bond.lmax), nradbase=nradbase, radcoefficients=np.zeros((0, 0, 0)),
                rcut=float(bond.rcut), dcut=0.0, rcut_in=0.0, dcut_in=0.0, inner_cutoff_type="density")


def _basis_derivatives(bond: Bond, r: np.ndarray) -> np.ndarray:
    """(3, npts, nradbase): g, dg/dr analytic, d2g/dr2 by a 4th-order central difference of dg/dr with a
    step kept inside (0, rcut) so that the cutoff's kink never enters the stencil."""
    n = bond.nradbase
    g, dg = radial_basis(bond, n, "density", r)
    h = np.full_like(r, 1e-4)
    inside = r < bond.rcut
    h[inside] = np.clip(np.minimum((bond.rcut - r[inside]) / 3.0, r[inside] / 3.0), 1e-12, 1e-4)
    stencil = [(2.0, -1.0), (1.0, 8.0), (-1.0, -8.0), (-2.0, 1.0)]
    d2 = np.zeros_like(dg)
    for shift, weight in stencil:
        _, d = radial_basis(bond, n, "density", r + shift * h)
        d2 += weight * d
    d2 /= 12.0 * h
    d2[:, ~inside] = 0.0
    return np.stack([g.T, dg.T, d2.T])


def smoothness_grids(bonds, npoints: int = GRID_POINTS) -> dict:
    """The grids of the bonds: ``bonds`` maps an unordered pair (a sorted tuple of symbols) to its radial
    settings (BondSpec or Bond; nradbase, radbase, radparameters, rcut, dcut), or is a list of them with
    a pair each as ``(pair, bond)``.  Returns pair -> :class:`SmoothnessGrid` (a dict in the same order)."""
    items = list(bonds.items()) if isinstance(bonds, dict) else list(bonds)
    if not items:
        return {}
    rcut_max = max(float(b.rcut) for _, b in items)
    r = np.linspace(GRID_START, rcut_max - GRID_END_GAP, npoints)
    dr = float(r[1] - r[0])
    mult = {tuple(p): (1 if p[0] == p[-1] else 2) for p, _ in items}
    total = sum(mult.values())
    out = {}
    for pair, bond in items:
        b = _as_model_bond(bond)
        out[tuple(pair)] = SmoothnessGrid(r=r, dr=dr, g=_basis_derivatives(b, r),
                                          scale=mult[tuple(pair)] / total * dr / float(b.rcut) ** 2)
    return out


def _pairs(crad, grids):
    """(key, coefficient array, grid) per bond, and a function rebuilding crad's form from arrays."""
    if isinstance(grids, dict):
        grid_list = list(grids.values())
    else:
        grid_list = list(grids)
    if isinstance(crad, dict):
        if not isinstance(grids, dict) or set(map(tuple, crad)) != set(grids):
            raise ValueError("crad and grids must name the same bonds (unordered pairs)")
        keys = list(crad)
        return [(k, np.asarray(crad[k], dtype=float), grids[tuple(k)]) for k in keys], \
            lambda arrays: dict(zip(keys, arrays))
    if isinstance(crad, np.ndarray) and crad.ndim == 4:
        arrays = list(crad)
        rebuild = lambda out: np.stack(out) if out else np.zeros_like(crad)   # noqa: E731
    else:
        arrays = [np.asarray(c, dtype=float) for c in crad]
        rebuild = list
    if len(arrays) != len(grid_list):
        raise ValueError(f"{len(arrays)} crad arrays for {len(grid_list)} grids")
    return [(k, np.asarray(a, dtype=float), g) for k, (a, g) in enumerate(zip(arrays, grid_list))], rebuild


def smoothness_terms(crad, grids) -> tuple[np.ndarray, object]:
    """(P0, P1, P2) and their gradients (3 per bond, in crad's form: dict, list or 4-D array of
    (3,) + shape)."""
    pairs, rebuild = _pairs(crad, grids)
    P = np.zeros(3)
    grads = []
    for key, c, grid in pairs:
        if c.size == 0:                       # a bond without radial functions (nradmax 0)
            grads.append(np.zeros((3,) + c.shape))
            continue
        if c.ndim != 3 or c.shape[2] != grid.nradbase:
            raise ValueError(f"crad of bond {key}: expected shape (nradmax, lmax+1, {grid.nradbase}), got {c.shape}")
        w = grid.r ** 2 * grid.scale                                 # (npts,)
        R = np.einsum("dpk,nlk->dpnl", grid.g, c)                   # (3, npts, nradmax, lmax+1)
        P += np.einsum("p,dpnl->d", w, np.abs(R))
        grads.append(np.einsum("p,dpnl,dpk->dnlk", w, np.sign(R), grid.g))
    return P, rebuild(grads)


def radial_smoothness(crad, w0: float, w1: float, w2: float, grids) -> tuple[float, object]:
    """``w0 P0 + w1 P1 + w2 P2`` of the radial coefficients ``crad`` (dict pair -> c[n, l, k], a list, or
    an (nbonds, nradmax, lmax+1, nradbase) array, aligned with ``grids`` from :func:`smoothness_grids`)
    and its gradient in crad's form."""
    weights = np.array([w0, w1, w2], dtype=float)
    if not np.any(weights):
        zero = {k: np.zeros_like(np.asarray(v, dtype=float)) for k, v in crad.items()} if isinstance(crad, dict) \
            else (np.zeros_like(crad) if isinstance(crad, np.ndarray) else [np.zeros_like(np.asarray(c, dtype=float))
                                                                           for c in crad])
        return 0.0, zero
    P, grads = smoothness_terms(crad, grids)
    if isinstance(grads, dict):
        grad = {k: np.tensordot(weights, v, axes=1) for k, v in grads.items()}
    elif isinstance(grads, np.ndarray):
        grad = np.tensordot(weights, np.moveaxis(grads, 1, 0), axes=1) if grads.size else grads[:, 0]
    else:
        grad = [np.tensordot(weights, v, axes=1) for v in grads]
    return float(weights @ P), grad
