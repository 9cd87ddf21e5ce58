"""`python -m eapo.cli ARGS`, the same as the `eapo ARGS` command."""

import sys

from eapo.cli import main

sys.exit(main())
