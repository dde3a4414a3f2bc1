"""Counter-based random numbers keyed by (seed, purpose, step, atom id).

Every random number an atom receives depends only on these four integers, never
on which rank owns the atom or in which order atoms are stored, so a run on four
ranks draws exactly what a run on one rank draws.  The generator is SplitMix64
(Steele, Lea and Flood 2014) used as a hash of the key, then as a short stream.
"""
from __future__ import annotations

import numpy as np
from numba import njit

PURPOSE_VELOCITIES = 1
PURPOSE_LANGEVIN = 2
PURPOSE_THERMOSTAT = 3
PURPOSE_BAROSTAT = 4

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


@njit(cache=True)
def _splitmix(state):
    state = state + np.uint64(0x9E3779B97F4A7C15)
    z = state
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return state, z


@njit(cache=True)
def _uniform(z):
    """(0, 1) from the top 53 bits."""
    return ((z >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def _normals(seed, purpose, step, ids, ncols, out):
    for k in range(ids.shape[0]):
        state = np.uint64(seed) * np.uint64(0xD1B54A32D192ED03)
        state, z = _splitmix(state ^ np.uint64(purpose))
        state, z = _splitmix(state ^ z ^ np.uint64(step))
        state, z = _splitmix(state ^ z ^ np.uint64(ids[k]))
        c = 0
        while c < ncols:
            state, z1 = _splitmix(state)
            state, z2 = _splitmix(state)
            u1 = _uniform(z1)
            u2 = _uniform(z2)
            rad = np.sqrt(-2.0 * np.log(u1))
            out[k, c] = rad * np.cos(2.0 * np.pi * u2)
            if c + 1 < ncols:
                out[k, c + 1] = rad * np.sin(2.0 * np.pi * u2)
            c += 2


def normals_per_atom(seed: int, purpose: int, step: int, ids, ncols: int = 3) -> np.ndarray:
    """Standard normal numbers, one row of ``ncols`` per atom id, independent of the rank layout."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    out = np.empty((len(ids), ncols))
    _normals(np.int64(seed) & 0x7FFFFFFFFFFFFFFF, purpose, step, ids, ncols, out)
    return out


def normals_global(seed: int, purpose: int, step: int, count: int) -> np.ndarray:
    """``count`` normals shared by all ranks (e.g. for a global thermostat)."""
    return normals_per_atom(seed, purpose, step, np.array([-1], dtype=np.int64), count)[0]
