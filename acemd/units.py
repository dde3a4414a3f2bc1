"""LAMMPS ``metal`` units: Å, eV, ps, amu, K, bar; conversion constants (CODATA 2018).

Internally acemd works in these units throughout: positions Å, velocities Å/ps,
forces eV/Å, masses amu, energies eV, time ps, temperature K, pressure bar.
"""
ELECTRON_VOLT_J = 1.602176634e-19
AMU_KG = 1.66053906660e-27
BOLTZMANN_J_K = 1.380649e-23

BOLTZMANN = BOLTZMANN_J_K / ELECTRON_VOLT_J          # eV/K, 8.617333262e-5
MVV_TO_EV = AMU_KG * 1e4 / ELECTRON_VOLT_J           # amu·Å²/ps² -> eV, 1.0364269e-4
FORCE_TO_ACCEL = 1.0 / MVV_TO_EV                     # eV/(Å·amu) -> Å/ps², 9648.533
EV_PER_A3_TO_BAR = ELECTRON_VOLT_J / 1e-30 / 1e5     # eV/Å³ -> bar, 1.602176634e6
EV_PER_A3_TO_GPA = ELECTRON_VOLT_J / 1e-30 / 1e9     # eV/Å³ -> GPa, 160.2176634

UNITS_LINE = "units: metal (Å, eV, ps, amu, K, bar)"
