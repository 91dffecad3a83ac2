"""`python -m bench NAME [ARGS...] | list | all [--json]`: run benchmarks by name."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

PREFIX = "bench_"
USAGE = """usage: python -m bench NAME [ARGS...]   run one benchmark (NAME --help for its options)
       python -m bench list                show the benchmarks
       python -m bench all [--json]        run every benchmark with its defaults"""


def available() -> dict[str, str]:
    """Benchmark name -> module name, from bench/bench_<name>.py."""
    here = str(Path(__file__).resolve().parent)
    return {m.name.removeprefix(PREFIX): f"bench.{m.name}"
            for m in sorted(pkgutil.iter_modules([here]), key=lambda m: m.name)
            if m.name.startswith(PREFIX)}


def load(name: str) -> Callable[[Sequence[str] | None], int]:
    benches = available()
    if name not in benches:
        known = ", ".join(benches) or "none"
        raise SystemExit(f"bench: no benchmark {name!r} (available: {known})")
    mod = importlib.import_module(benches[name])
    main = getattr(mod, "main", None)
    if main is None:
        raise SystemExit(f"bench: {benches[name]} has no main(argv)")
    return main


def summary(module: str) -> str:
    """The first docstring line, without importing heavy dependencies twice."""
    mod = importlib.import_module(module)
    return ((mod.__doc__ or "").strip().splitlines() or [""])[0]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        print("\nbenchmarks: " + (", ".join(available()) or "none"))
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name == "list":
        for bname, module in available().items():
            try:
                line = summary(module)
            except Exception as e:  # a broken module must not hide the others
                line = f"(cannot import: {e})"
            print(f"{bname:14} {line}")
        return 0
    if name == "all":
        worst = 0
        for bname in available():
            print(f"\n=== {bname} ===", flush=True)
            t0 = time.perf_counter()
            rc = int(load(bname)(list(rest)) or 0)
            print(f"=== {bname}: exit {rc}, {time.perf_counter() - t0:.1f} s ===", flush=True)
            worst = max(worst, rc)
        return worst
    return int(load(name)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
