"""The first minutes of search_efficiency's runs: who leads, and for how long lstm-tune is behind.

Reads the contenders' ``epochs.jsonl`` that ``search_efficiency.py`` left in ``--out-dir``
(any mix of runs, e.g. 30-minute peers and 10-minute lstm-tune variants measured after them
on the same machine) and compares them over their first ``--minutes``: best validation
accuracy by minute, when each ended its first epoch, and the spans in which each lstm-tune
contender's best-so-far was below a peer's.

    python benchmarks/search_efficiency.py --budget 600 --no-write \\
        --contenders lstm-tune@quick,lstm-tune@auto-quick       # after the 30-minute run
    python benchmarks/search_start.py --minutes 10 \\
        --contenders lstm-tune@auto,lstm-tune@quick,lstm-tune@auto-quick,optuna-tpe,kerastuner

A contender may also be ``LABEL:RUN_DIR``, a run kept elsewhere, e.g. a peer run with another
sampler seed (``search_efficiency.py --peer-seed 1 --out-dir runs/seed1``):
``--contenders 'lstm-tune@auto,optuna-tpe seed 1:runs/seed1/optuna-tpe'``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from _common import ROOT, git_revision, machine_line, publish
from search_efficiency import behind_spans, best_at, read_epochs, runner_name


def first_epoch(records: list[dict[str, Any]]) -> str:
    """When a contender's first epoch ended, and its validation accuracy."""
    if not records:
        return "-"
    first = min(records, key=lambda record: record["seconds"])
    return f"{first['seconds']:.0f} s ({first['val_accuracy']:.4f})"


def layout(run_dir: Path) -> str:
    """The worker processes and threads a contender ran with, from its ``run.json``."""
    run = json.loads((run_dir / "run.json").read_text())
    if "workers" in run:
        return f"{run['workers']} workers, {run['threads']} each"
    return "1 process, TensorFlow's default threads"


def run_dir(entry: str, out: Path) -> tuple[str, Path]:
    """A ``--contenders`` entry's label and run directory: ``NAME`` (in ``out``) or
    ``LABEL:RUN_DIR``."""
    label, _, path = entry.partition(":")
    return label, Path(path) if path else out / label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--contenders", required=True)
    parser.add_argument("--out-dir", default=str(ROOT / "runs" / "search_efficiency"))
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    parser.add_argument("--section", default="search_start", help="the BENCHMARKS.md section")
    args = parser.parse_args()
    out = Path(args.out_dir)
    run_dirs = dict(run_dir(entry.strip(), out) for entry in args.contenders.split(","))
    names = list(run_dirs)
    end = args.minutes * 60
    epochs = {
        name: [r for r in read_epochs(run_dirs[name]) if r["seconds"] <= end] for name in names
    }
    marks = [0.5, 1, 2, 3, 5, args.minutes]
    marks = sorted({m for m in marks if m <= args.minutes})
    lines = [
        "| contender | layout | first epoch end | "
        + " | ".join(f"best @ {m:g} min" for m in marks)
        + " |",
        "|---|---|---:|" + "---:|" * len(marks),
    ]
    for name in names:
        cells = [best_at(epochs[name], m * 60) for m in marks]
        lines.append(
            f"| {name} | {layout(run_dirs[name])} | {first_epoch(epochs[name])} | "
            + " | ".join("-" if c is None else f"{c:.4f}" for c in cells)
            + " |"
        )
    moments = sorted({r["seconds"] for name in names for r in epochs[name]})
    verdicts = []
    for ours in (n for n in names if runner_name(n) == "lstm-tune"):
        peers = [n for n in names if runner_name(n) != "lstm-tune"]
        behind = {peer: behind_spans(epochs[ours], epochs[peer], moments, end) for peer in peers}
        minutes = [sum(b - a for a, b in spans) / 60 for spans in behind.values()]
        if len(peers) > 1:
            verdicts.append(
                f"- {ours}: behind {sum(1 for m in minutes if m > 0)} of {len(peers)} peer runs "
                f"at some moment; minutes behind per peer run: mean "
                f"{sum(minutes) / len(peers):.1f}, most {max(minutes):.1f}"
            )
        for peer, spans in behind.items():
            verdicts.append(
                f"- {ours} against {peer}: "
                + (
                    "never behind"
                    if not spans
                    else f"behind for {sum(b - a for a, b in spans) / 60:.1f} min ("
                    + ", ".join(f"{a / 60:.2f}-{b / 60:.2f}" for a, b in spans)
                    + " min)"
                )
            )
    body = "\n".join(
        [
            f"## {args.section}",
            "",
            f"Command: `python benchmarks/search_start.py --minutes {args.minutes:g} "
            f"--contenders '{args.contenders}'"
            + (f" --section {args.section}" if args.section != "search_start" else "")
            + f"` (commit {git_revision()}), on the runs of "
            "`search_efficiency.py` in its out-dir.",
            f"Machine: {machine_line()}.",
            "",
            f"The first {args.minutes:g} minutes of each contender's search (full IMDB, the "
            "space of `studies/imdb.yaml`, validation accuracy at epoch ends on all 5,000 "
            "validation reviews). One run of each, one after the other.",
            "",
            *lines,
            "",
            *verdicts,
        ]
    )
    publish(args.section, body, write=not args.no_write)


if __name__ == "__main__":
    main()
