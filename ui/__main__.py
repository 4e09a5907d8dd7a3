"""``python -m pocketpacs.ui [app|serve|demo]`` -- the app without the CLI."""
from .launch import main

raise SystemExit(main())
