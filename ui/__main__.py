"""``python -m pocketpacs.ui`` -- the same command line as ``pocketpacs`` (no command: the window)."""
from .launch import cli_main

raise SystemExit(cli_main())
