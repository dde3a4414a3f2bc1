"""Fitting ACE potentials to reference data (``acemd fit``).

The package turns reference energies, forces and stresses into a potential.  It
reuses the potential's basis tables and kernel passes (``acemd.potential``), so the
fitted model and the MD engine evaluate the same function:

- ``config``   pacemaker's ``input.yaml`` -> validated settings
- ``dataset``  pacemaker pickles and ASE formats -> structures with targets
- ``weights``  pacemaker's weighting policies
- ``basis``    the B-functions for ``nradmax_by_orders``/``lmax_by_orders``, own couplings
- ``design``   per-structure energy, force and virial rows from the kernel pass
- ``solvers``  weighted ridge and Bayesian linear regression, committees
- ``run``      the ``acemd fit`` pipeline: assembly over MPI ranks, solve, outputs, metrics
"""
