"""The scatter step shared by the numba pair terms (Uhlenbeck-Ford, Lennard-Jones)."""
from numba import njit


@njit(cache=True, inline="always")
def add_pair_force(i, j, h, d0, d1, d2, forces, virial):
    """Add f_i = h d, f_j = -h d (d = x_j - x_i, h = half of dphi/dr / r: every pair is
    listed from both sides) and their virial x_i (x) f_i + x_j (x) f_j = -d (x) f_i."""
    f = (h * d0, h * d1, h * d2)
    d = (d0, d1, d2)
    for a in range(3):
        forces[i, a] += f[a]
        forces[j, a] -= f[a]
        for b in range(3):
            virial[a, b] -= d[a] * f[b]
