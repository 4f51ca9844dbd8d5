"""The command line: search, resume, inspect, simplify, export.

The search itself is not built yet (see the open issue "The search"); today this
command checks a program file or a library program and prints what abstract
execution finds, so the DSL can be tried from the shell:

    python run_search.py                      # explains the state of the project
    python run_search.py check adamw          # a library program
    python run_search.py check my_rule.dsl    # a program file
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dsl import ProgramError, abstract, graph, library, parse


def _load(spec: str):
    path = Path(spec)
    if path.suffix == ".dsl" or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ProgramError(f"cannot read {spec}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise ProgramError(f"{spec} is not UTF-8 text") from None
        try:
            return parse(text)
        except ProgramError as e:
            raise ProgramError(f"{spec}: {e}") from None
    return library.get(spec)


def _check(spec: str, shape: tuple[int, ...]) -> None:
    program = _load(spec)
    result = abstract.check(program, shape)
    live = graph.liveness(program)
    print(program.to_source(), end="")
    print(f"\nleaf shape {shape}:")
    for name, value in result.states.items():
        print(f"  state {name}: shape {value.shape}, {value.dtype}")
    dead = len(program.statements) - len(live.statements)
    print(f"  statements: {len(program.statements)} ({dead} dead)")
    print(f"  structural hash: {abstract.structural_hash(program)}")
    print(f"  fingerprint:     {abstract.fingerprint(program)}")


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a shape: {text!r} (write e.g. 256x128)") from None
    if any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"dimensions must be positive: {text!r}")
    return dims


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_search.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    check = sub.add_parser("check", help="parse and abstractly execute a program")
    check.add_argument("program", help="a library name (e.g. adamw) or a .dsl file")
    check.add_argument("--shape", type=_shape, default=(256, 128), help="leaf shape, e.g. 256x128")
    sub.add_parser("library", help="list the library programs")
    args = parser.parse_args(argv)

    try:
        if args.command == "check":
            _check(args.program, args.shape)
        elif args.command == "library":
            print("\n".join(library.names()))
        else:
            print(
                "The search is not built yet: this release has the program DSL only.\n"
                "Try: python run_search.py library\n"
                "     python run_search.py check lion"
            )
    except ProgramError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
