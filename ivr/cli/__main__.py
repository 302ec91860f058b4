"""`python -m ivr.cli`: the same as the `ivr` command (the AGI wrapper and the testbed start it this way)."""

import sys

from ivr.cli import main

sys.exit(main())
