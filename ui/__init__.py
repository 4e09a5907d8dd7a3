"""The PocketPACS desktop app (pywebview shell and web frontend).

Depends on :mod:`pocketpacs`; the core never imports this package."""
