"""Fitting ACE potentials to reference data (``acemd fit``).

The package turns reference energies, forces and stresses into a potential.  It
reuses the potential's basis tables and kernel passes (``acemd.potential``), so the
fitted model and the MD engine evaluate the same function:

- ``config``   pacemaker's ``input.yaml`` -> validated settings (keys in ``input_schema``)
- ``dataset``  pacemaker pickles and ASE formats -> structures with targets
- ``weights``  pacemaker's weighting policies
- ``basis``    the B-functions for ``nradmax_by_orders``/``lmax_by_orders`` (``couplings``: acemd's own
  independent couplings; ``bbasis_writer``: pacemaker's B-basis ``.yaml``)
- ``design``   per-structure energy, force and virial rows from the kernel pass
- ``assembly`` pacemaker's loss as weighted rows, normal equations summed over MPI ranks
- ``solvers``  weighted ridge and Bayesian linear regression, committees
- ``metrics``  errors of the written potential per set and group
- ``run``      the ``acemd fit`` pipeline: data, basis, assembly, solve, outputs, metrics
"""
