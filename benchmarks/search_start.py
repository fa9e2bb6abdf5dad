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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--contenders", required=True)
    parser.add_argument("--out-dir", default=str(ROOT / "runs" / "search_efficiency"))
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args()
    names = [name.strip() for name in args.contenders.split(",")]
    end = args.minutes * 60
    out = Path(args.out_dir)
    epochs = {name: [r for r in read_epochs(out / name) if r["seconds"] <= end] for name in names}
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
            f"| {name} | {layout(out / name)} | {first_epoch(epochs[name])} | "
            + " | ".join("-" if c is None else f"{c:.4f}" for c in cells)
            + " |"
        )
    moments = sorted({r["seconds"] for name in names for r in epochs[name]})
    verdicts = []
    for ours in (n for n in names if runner_name(n) == "lstm-tune"):
        for peer in (n for n in names if runner_name(n) != "lstm-tune"):
            spans = behind_spans(epochs[ours], epochs[peer], moments, end)
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
            "## search_start",
            "",
            f"Command: `python benchmarks/search_start.py --minutes {args.minutes:g} "
            f"--contenders {','.join(names)}` (commit {git_revision()}), on the runs of "
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
    publish("search_start", body, write=not args.no_write)


if __name__ == "__main__":
    main()
