"""PocketPACS benchmarks: one runner (``pocketpacs bench``, ``python -m benchmarks``) over modules.

Each benchmark is a module of this package with ``NAME`` (the name on the
command line), a one-line docstring and ``run(ctx) -> list[Row]``
(:mod:`.results`): it generates the data it needs into the cache
(``ctx.cached``), measures, and returns rows of figures or of reasons why a
figure could not be had.  :data:`REGISTRY` lists them in run order: adding a
benchmark is one entry there (see ``benchmarks/README.md``).  The same
folder keeps the older stand-alone scripts (fuzzing, kill and corruption
runs) that are not part of the suite.
"""
from __future__ import annotations

#: Modules of the suite, in run order; ``pocketpacs bench`` runs them all, or those named.
REGISTRY: list[str] = [
    "bench_parse",
    "bench_import",
    "bench_search",
    "bench_volume",
    "bench_memory",
    "bench_render",
    "bench_ui",
    "bench_startup",
    "bench_compare",
    "bench_network",
    "bench_export",
]
