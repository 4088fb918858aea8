"""Per-module mutation scores from the results ``mutmut run`` left in ``mutants/`` (``make mutate``).

    .venv/bin/python -m bench.mutation_score [--diff]

For each module in ``[tool.mutmut] only_mutate`` it prints killed/total and the percentage, then every
mutant that was not killed with its status; ``--diff`` adds each survivor's diff (``mutmut show``).
A timeout counts as killed (the mutant made the tests hang, so they noticed it); "survived",
"no tests", "not checked" and "suspicious" count against the score: no test failed because of it.
Exits 1 when no results are there, 2 when a module scores below ``--floor`` percent.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_DETECTED = {"killed", "timeout", "caught by type check"}


@dataclass
class ModuleScore:
    path: str
    statuses: Counter[str] = field(default_factory=Counter)
    alive: list[tuple[str, str]] = field(default_factory=list)  # (mutant name, status)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    @property
    def killed(self) -> int:
        return sum(n for status, n in self.statuses.items() if status in _DETECTED)

    @property
    def percent(self) -> float:
        return 100.0 * self.killed / self.total if self.total else 0.0


def status_of(exit_code: int | None) -> str:
    """mutmut's own reading of the exit code it recorded for a mutant."""
    from mutmut.stats import status_by_exit_code

    return status_by_exit_code[exit_code]


def mutated_modules(pyproject: Path) -> list[str]:
    config = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["mutmut"]
    return list(config["only_mutate"])


def score(path: str, mutants_dir: Path) -> ModuleScore | None:
    meta = mutants_dir / f"{path}.meta"
    if not meta.exists():
        return None
    exit_codes: dict[str, int | None] = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
    result = ModuleScore(path)
    for name, exit_code in sorted(exit_codes.items(), key=lambda kv: _natural(kv[0])):
        status = status_of(exit_code)
        result.statuses[status] += 1
        if status not in _DETECTED:
            result.alive.append((name, status))
    return result


def _natural(name: str) -> tuple[str, int]:
    """``x_f__mutmut_10`` after ``x_f__mutmut_9``."""
    stem, _, number = name.rpartition("__mutmut_")
    return stem, int(number) if number.isdigit() else 0


def _diff(name: str) -> str:
    from mutmut.mutation.diff_apply import find_mutant, get_diff_for_mutant

    return get_diff_for_mutant(name, path=find_mutant(name).path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--diff", action="store_true", help="show each surviving mutant's diff")
    parser.add_argument("--floor", type=float, default=0.0, help="exit 2 when a module scores below this %%")
    args = parser.parse_args(argv)

    scores = [(path, score(path, Path("mutants"))) for path in mutated_modules(Path("pyproject.toml"))]
    if all(s is None for _, s in scores):
        print("No mutation results in mutants/: run `make mutate` (or `mutmut run`) first.")
        return 1
    width = max(len(path) for path, _ in scores)
    print(f"{'module':<{width}}  killed/total      %")
    killed = total = 0
    for path, result in scores:
        if result is None:
            print(f"{path:<{width}}  (no results)")
            continue
        killed, total = killed + result.killed, total + result.total
        print(f"{path:<{width}}  {result.killed:>6}/{result.total:<5} {result.percent:5.1f}")
    print(f"{'all':<{width}}  {killed:>6}/{total:<5} {100.0 * killed / total if total else 0.0:5.1f}")
    for path, result in scores:
        if result is None or not result.alive:
            continue
        others = ", ".join(f"{n} {s}" for s, n in sorted(result.statuses.items()) if s != "killed")
        print(f"\n{path}: not killed ({others})")
        for name, status in result.alive:
            print(f"  {status:<12} {name}")
            if args.diff:
                print("    " + _diff(name).strip().replace("\n", "\n    "))
    below = [path for path, result in scores if result is not None and result.percent < args.floor]
    if below:
        print(f"\nBelow the {args.floor:g} % floor: {', '.join(below)}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
