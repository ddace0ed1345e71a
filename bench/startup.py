"""Part 5 — start-up: wall time of ``edoc --help`` and of ``edoc search`` on an empty archive.

Measured with hyperfine (``-N``: no shell in between) when it is installed, else by timing
repeated subprocesses; the baseline is the bare interpreter (``python -c pass``) in the same
run. A ``python -X importtime`` pass over ``edoc search`` names the imports that cost most.
"""

from __future__ import annotations

import json
import shlex
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence

from bench.common import Bench, BenchError, Row, edoc_command, log, require_ok, run_child

PART = "startup"
TARGET_S = 0.3


def _hyperfine(bench: Bench, commands: dict[str, list[str]], runs: int) -> dict[str, list[float]]:
    out = bench.workdir / "hyperfine.json"
    cmd = ["hyperfine", "-N", "--warmup", "2", "--runs", str(runs), "--export-json", str(out),
           "--style", "none", *(shlex.join(c) for c in commands.values())]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"hyperfine failed: {done.stderr.strip()[-300:]}")
    results = json.loads(out.read_text())["results"]
    return {name: list(r["times"]) for name, r in zip(commands, results, strict=True)}


def _loop(commands: dict[str, list[str]], runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    for name, cmd in commands.items():
        for _ in range(2):
            require_ok(run_child(cmd), name)  # warm-up
        times[name] = [require_ok(run_child(cmd), name).wall for _ in range(runs)]
    return times


def top_imports(edoc: Sequence[str], args: Sequence[str], count: int = 4) -> str:
    """The slowest top-level imports of one run, each with its slowest direct children
    (``python -X importtime``: children are printed before their parent, indented)."""
    cmd = ([sys.executable, "-X", "importtime", *edoc[1:], *args] if edoc[0] == sys.executable
           else [sys.executable, "-X", "importtime", edoc[0], *args])
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    tops: list[tuple[int, str, list[tuple[int, str]]]] = []
    children: list[tuple[int, str]] = []
    for line in done.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) != 3 or not fields[1].strip().isdigit():
            continue
        raw, cumulative = fields[2], int(fields[1])
        depth = (len(raw) - len(raw.lstrip()) - 1) // 2
        if depth == 1:
            children.append((cumulative, raw.strip()))
        elif depth == 0:
            tops.append((cumulative, raw.strip(), sorted(children, reverse=True)[:2]))
            children = []
    tops.sort(reverse=True)
    out = []
    for cumulative, name, kids in tops[:count]:
        inner = ", ".join(f"{k} {us / 1000:.0f}" for us, k in kids if us >= 5000)
        out.append(f"{name} {cumulative / 1000:.0f} ms" + (f" ({inner})" if inner else ""))
    return "; ".join(out)


def run(bench: Bench) -> None:
    archive = bench.local_archive("startup-empty")
    archive.close()
    edoc = edoc_command()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "edoc --help": [*edoc, "--help"],
        "edoc search (empty archive)": [*edoc, "--archive", str(archive.cfg.dir), "search"],
    }
    runs = bench.counts.startup_runs
    if shutil.which("hyperfine"):
        tool = "hyperfine -N"
        times = _hyperfine(bench, commands, runs)
    else:
        tool = "subprocess loop (hyperfine not installed)"
        times = _loop(commands, runs)
    base = statistics.mean(times["python -c pass"])
    imports = top_imports(edoc, ["--archive", str(archive.cfg.dir), "search"])
    for name in ("edoc --help", "edoc search (empty archive)"):
        mean = statistics.mean(times[name])
        note = (f"{tool}, {len(times[name])} runs, median "
                f"{statistics.median(times[name]) * 1000:.0f} ms, max "
                f"{max(times[name]) * 1000:.0f} ms")
        if name.startswith("edoc search"):
            note += f"; slowest top-level imports: {imports}"
        bench.add(Row(PART, f"{name}, mean wall", mean, "s", baseline="python -c pass",
                      baseline_value=base, ratio=base / mean, target=f"≤ {TARGET_S} s",
                      met=mean <= TARGET_S, note=note))
    log(f"startup: interpreter alone {base * 1000:.0f} ms")
