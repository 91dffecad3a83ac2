"""`python -m sim`: the twin as a child process of the console (see runtime/twin)."""

import sys

from sim.parent_watch import watch_parent

watch_parent()  # before the slow imports: a launcher killed during start-up is seen

from sim.cli import main  # noqa: E402

sys.exit(main())
