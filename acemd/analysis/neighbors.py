"""Cells and thread counts of the neighbour libraries (freud, pyscal3)."""
from __future__ import annotations

import numpy as np

from .errors import AnalysisInputError


def freud():
    try:
        import freud as _freud
    except ImportError:
        raise AnalysisInputError("freud is not installed: pip install 'acemd[plot]' "
                                 "(package freud-analysis)") from None
    return _freud


def set_threads(n: int | None):
    """Limit freud's and pyscal3's threads (None: leave their defaults)."""
    if n is None:
        return
    freud().parallel.set_num_threads(int(n))
    try:
        import pyscal3
        pyscal3.set_num_threads(int(n))
    except ImportError:
        pass


def canonical_cell(cell) -> np.ndarray:
    """The same lattice rotated so that a is along x and b in the xy plane (rows: vectors).

    freud boxes are upper-triangular matrices of column vectors (Lx, Ly, Lz, xy, xz, yz);
    a general acemd cell is first rotated into that orientation.
    """
    from ase.geometry import cell_to_cellpar, cellpar_to_cell
    return cellpar_to_cell(cell_to_cellpar(np.asarray(cell, float)))


def freud_system(cell, positions):
    """``(freud.box.Box, points)`` for a periodic cell (rows) and Cartesian positions (Å)."""
    cell = np.asarray(cell, float)
    frac = np.linalg.solve(cell.T, np.asarray(positions, float).T).T
    new = canonical_cell(cell)
    box = freud().box.Box.from_matrix(new.T)
    frac -= np.floor(frac)
    points = (frac - 0.5) @ new
    return box, points.astype(np.float32)


def max_rdf_radius(cell) -> float:
    """Half the smallest distance between opposite cell faces (minimum-image limit), Å."""
    cell = np.asarray(cell, float)
    vol = abs(np.linalg.det(cell))
    widths = [vol / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)]
    return 0.5 * min(widths)
