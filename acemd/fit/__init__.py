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
- ``basis_file``  a pacemaker B-basis ``.yaml`` as a fit basis with coefficients (upfitting)
- ``repulsion``   ``repulsion: auto``: ZBL core repulsion below each pair's shortest distance

The nonlinear fit (pacemaker's model class, trained iteratively):

- ``nonlinear_model``  parameters, tables and the two numba passes (``potential.adjoint_kernel``)
- ``batch``            the training structures as one flat atom set for those passes
- ``loss``             pacemaker's loss and its exact gradient, summed over MPI ranks
- ``regularization``   the coefficient and radial-smoothness penalties
- ``optimizers``       BFGS, L-BFGS-B and Adam with checkpointable state
- ``ladder``           the ladder (hierarchical) schedule
- ``nonlinear``        the pipeline: ladder steps, fit cycles, checkpoints, outputs
"""
