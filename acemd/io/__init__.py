"""Input/output: H5MD trajectories, checkpoints, the thermo log and structure input.

Everything written is ordered by global atom id and written by rank 0 after a
gather (``Gatherv`` of contiguous arrays, see :func:`gather_by_id`); every
function taking ``comm`` is collective, raises the same error on every rank,
and works with a 1-rank communicator.
"""
from .checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from ..parallel.gather import gather_by_id
from .h5md import FieldSpec, H5MDError, H5MDWriter
from .structure import StructureError, load_structure
from .thermo import ThermoLog, read_thermo

__all__ = ["CheckpointError", "FieldSpec", "H5MDError", "H5MDWriter", "StructureError",
           "ThermoLog", "gather_by_id", "load_structure", "read_checkpoint", "read_thermo",
           "write_checkpoint"]
