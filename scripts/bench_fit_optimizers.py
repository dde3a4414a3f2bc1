#!/usr/bin/env python
"""The optimizers' own cost per iteration (the loss evaluation excluded): acemd.fit.optimizers against
scipy.optimize.minimize for BFGS and L-BFGS-B on a cheap quadratic with n coefficients.

    python scripts/bench_fit_optimizers.py [--n 500 2000] [--iterations 10]

scipy's BFGS updates its inverse Hessian by two n x n matrix products, O(n^3) per iteration; acemd's
writes the same update as a rank-2 correction, O(n^2).  The loss here costs O(n^2) (one matrix-vector
product), so the figures are the optimizers' overhead per iteration.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.optimize as so

from acemd.fit.optimizers import minimize


def problem(n, seed=0):
    rng = np.random.default_rng(seed)
    d = np.logspace(0, 2, n)
    b = rng.normal(size=n)
    return lambda x: (0.5 * x @ (d * x) - b @ x, d * x - b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[500, 2000])
    ap.add_argument("--iterations", type=int, default=10)
    args = ap.parse_args()
    print(f"{'method':9s} {'n':>6s} {'acemd ms/it':>12s} {'scipy ms/it':>12s}  (loss evaluation excluded)")
    for n in args.n:
        fun = problem(n)
        for method in ("BFGS", "L-BFGS-B"):
            times = {}
            for who in ("acemd", "scipy"):
                t_eval = [0.0]

                def timed(x):
                    t = time.perf_counter()
                    out = fun(x)
                    t_eval[0] += time.perf_counter() - t
                    return out
                t0 = time.perf_counter()
                if who == "acemd":
                    r = minimize(timed, np.zeros(n), method, maxiter=args.iterations, options={"gtol": 0})
                else:
                    r = so.minimize(timed, np.zeros(n), jac=True, method=method,
                                    options={"maxiter": args.iterations, "gtol": 0})
                times[who] = (time.perf_counter() - t0 - t_eval[0]) / max(r.nit, 1) * 1e3
            print(f"{method:9s} {n:6d} {times['acemd']:12.2f} {times['scipy']:12.2f}")


if __name__ == "__main__":
    main()
