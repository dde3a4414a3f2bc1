"""`python -m acemd ...` runs the same command line as the `acemd` console script."""
import sys

from .cli import main

sys.exit(main())
