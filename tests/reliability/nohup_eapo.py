"""`eapo ARGS` with SIGHUP ignored, as `nohup eapo ARGS` starts it: closing the terminal must not stop it."""

from __future__ import annotations

import signal
import sys

from eapo.cli import main

signal.signal(signal.SIGHUP, signal.SIG_IGN)
sys.exit(main(sys.argv[1:]))
