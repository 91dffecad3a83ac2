"""Benchmarks: each prints its figures beside a raw baseline measured in the same run.

One module per benchmark, ``bench/bench_<name>.py``, with a one-line docstring summary
and ``main(argv: Sequence[str] | None) -> int``. ``python -m bench NAME [ARGS...]``
finds it by name; ``python -m bench list`` shows them; ``python -m bench all`` runs each
with its defaults. Nothing to register: adding the module is enough.
"""
