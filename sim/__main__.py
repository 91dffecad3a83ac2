"""`python -m sim`: the twin as a child process of the console (see runtime/twin)."""

import sys

from sim.cli import main

sys.exit(main())
