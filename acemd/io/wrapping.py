"""Positions as written to trajectories: wrapped into the cell along periodic axes, with images.

Between neighbour-list rebuilds atoms may sit slightly outside the cell; a restart
wraps them (:meth:`acemd.parallel.halo.Halo.wrap_positions`).  Writing every
frame through :func:`wrap_periodic` makes the trajectory independent of when the
run was restarted: ``position`` is always in the cell (fractional [0, 1) along
periodic axes) and ``position + image @ cell`` is the unwrapped position.
"""
from __future__ import annotations

import numpy as np


def wrap_periodic(positions, images, cell, pbc):
    """(positions, images) wrapped along periodic axes; atoms already inside keep their exact values."""
    pos = np.array(positions, dtype=np.float64).reshape(-1, 3)
    img = np.array(images, dtype=np.int64).reshape(-1, 3)
    per = np.flatnonzero(np.asarray(pbc, dtype=bool))
    if per.size == 0 or len(pos) == 0:
        return pos, img
    cell = np.asarray(cell, dtype=np.float64)
    frac = pos @ np.linalg.inv(cell)
    shift = np.zeros(pos.shape, dtype=np.int64)
    shift[:, per] = np.floor(frac[:, per]).astype(np.int64)
    rows = np.flatnonzero(shift.any(axis=1))
    if rows.size:
        pos[rows] -= shift[rows].astype(np.float64) @ cell
        img[rows] += shift[rows]
    return pos, img
