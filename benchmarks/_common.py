"""Helpers shared by the benchmark scripts: machine facts and BENCHMARKS.md sections."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path

from lstm_tune.cli.env import default_cache_dir
from lstm_tune.config import StudySpec, load_spec, with_data

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data" / "imdb_50k.csv.gz"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"


def machine_line() -> str:
    """One line naming this machine: CPU model, cores, memory, Python and TF versions."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
        mem = f"{mem_kb / 2**20:.0f} GiB"
    except (OSError, AttributeError):
        mem = "? GiB"
    import tensorflow as tf

    return (
        f"{cpu}, {os.cpu_count()} cores, {mem}, Python {platform.python_version()}, "
        f"TensorFlow {tf.__version__}"
    )


def lstm_training_flops_per_token(
    hidden: int, layers: int, *, inputs: int | None = None, head: int = 0
) -> float:
    """Matrix FLOPs to train on one token: 3 x the forward pass (the backward pass is twice it).

    Forward, per layer: 2 x (its input + hidden) x 4 hidden; the first layer's input is
    ``inputs`` (the embedding; default ``hidden``), the others' the layer below. ``head`` is the
    output layer's width (a language model's vocabulary), 2 x hidden x head more.
    """
    forward = 0.0
    width = hidden if inputs is None else inputs
    for _ in range(layers):
        forward += 2 * (width + hidden) * 4 * hidden
        width = hidden
    return 3 * (forward + 2 * hidden * head)


def git_revision() -> str:
    """The commit the benchmark ran on (short hash), or 'unknown'."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def imdb_study(data_path: str, train_limit: int | None = None) -> StudySpec:
    """``studies/imdb.yaml`` on the local CSV (optionally a slice), cached as the CLI caches."""
    spec = load_spec(ROOT / "studies" / "imdb.yaml")
    return with_data(
        spec,
        source="csv",
        path=data_path,
        train_limit=train_limit,
        cache_dir=default_cache_dir(),
    )


def publish(name: str, body: str, write: bool) -> None:
    """Print a benchmark's section and, if ``write``, put it into BENCHMARKS.md."""
    print(body)
    if write:
        write_section(name, body)


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section ``## name`` of BENCHMARKS.md with ``body``."""
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    start_marker, end_marker = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    section = f"{start_marker}\n{body.rstrip()}\n{end_marker}"
    if start_marker in text and end_marker in text:
        before, rest = text.split(start_marker, 1)
        _, after = rest.split(end_marker, 1)
        text = before + section + after
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    BENCHMARKS_MD.write_text(text)
