"""`python -m bench`: run every benchmark, print a summary and rewrite BENCHMARKS.md.

Run it from the repository root (`make bench` does), where `tests.support.world` is importable.
`--only SECTION` runs one section and prints it without touching BENCHMARKS.md; with `--update`
it rewrites that section in BENCHMARKS.md and keeps the others as they were measured.

SIGINT (Ctrl-C), SIGTERM and SIGHUP stop it with one line, exit 128 + the signal, every child
process ended and BENCHMARKS.md untouched. One run per checkout (`.local/bench.lock`): a second
refuses with the first one's pid, since two at once would measure each other.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import aws_calls, cold_import, ecs_deploy, first_event, latency, report, sizes, startup, storm
from bench.common import REPO_ROOT
from deployer_cli.signals import run_stoppable
from deployer_local.pidlock import AlreadyRunning, PidLock

LOCK_FILE = REPO_ROOT / ".local" / "bench.lock"

RUNNERS: dict[str, Callable[[], dict[str, Any]]] = {
    "startup": startup.plan_startup,
    "imports": cold_import.cold_imports,
    "sizes": sizes.package_sizes,
    "calls": aws_calls.whole_release,
    "latency": latency.per_event_latency,
    "storm": storm.storm,
    "ecs_deploy": ecs_deploy.side_by_side,
    "first_event": first_event.first_events,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(RUNNERS), action="append", help="run only this section (repeatable)")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "BENCHMARKS.md", help="where to write the report")
    parser.add_argument(
        "--update",
        action="store_true",
        help="with --only: rewrite those sections in the report, keeping the others as they were measured",
    )
    args = parser.parse_args(argv)
    if args.update and not args.only:
        parser.error("--update goes with --only (without it, every section is measured and the report rewritten)")
    return run_stoppable("python -m bench", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    try:
        lock = PidLock(LOCK_FILE, "python -m bench").acquire()
    except AlreadyRunning as exc:
        print(f"python -m bench: error: a benchmark is {exc}", file=sys.stderr)
        return 1
    try:
        return _measure(args)
    finally:
        lock.release()


def _measure(args: argparse.Namespace) -> int:
    chosen = args.only or list(RUNNERS)
    load = report.load_average()
    started = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    for index, key in enumerate(chosen, 1):
        title = report.SECTIONS[key][0].split(" ", 1)[1]
        print(f"[{index}/{len(chosen)}] {title} ...", file=sys.stderr, flush=True)
        section_started = time.perf_counter()
        results[key] = RUNNERS[key]()
        results[key]["_seconds"] = time.perf_counter() - section_started
        print(f"      done in {results[key]['_seconds']:.0f} s", file=sys.stderr, flush=True)
    info = report.run_info(time.perf_counter() - started, load)
    print()
    print("\n".join(report.summary(results)))
    text = report.markdown(results, info, sections=chosen if args.only else None)
    where = args.output.relative_to(REPO_ROOT) if args.output.is_relative_to(REPO_ROOT) else args.output
    if args.only and args.update:
        previous = args.output.read_text(encoding="utf-8") if args.output.is_file() else ""
        args.output.write_text(report.merge(previous, text), encoding="utf-8")
        print(f"\nrewrote {', '.join(chosen)} in {where}")
    elif args.only:
        print()
        print(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        print(f"\nwrote {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
