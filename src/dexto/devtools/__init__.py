"""Developer tools: deterministic fake upstream servers for tests, benchmarks and offline demos.

Modules here keep their top-level imports light (stdlib only): ``dexto dev …`` imports them to
build its argument parser.
"""

__all__: list[str] = []
