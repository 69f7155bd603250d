"""Wall time of each read-only command, median of N runs (default 5).

    python benchmarks/cli_latency.py [--repeats 5] [--runs-dir DIR] [--mnist-tui PATH]

Each command runs as a fresh process, exactly as a user types it, on the shipped
experiments; the run store is an empty temporary directory unless `--runs-dir` names one.
It also says whether each command imported torch (from `python -X importtime`), since a
read-only command should never pay for it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS: list[list[str]] = [
    ["--help"],
    ["list"],
    ["runs"],
    ["show", "fnn1"],
    ["diff", "fnn1", "fnn2"],
    ["report"],
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--runs-dir", type=Path, default=None)
    ap.add_argument("--mnist-tui", default=None, help="the entry point (default: beside python)")
    args = ap.parse_args()
    exe = args.mnist_tui or shutil.which("mnist-tui", path=str(Path(sys.executable).parent))
    if exe is None:
        sys.exit("mnist-tui is not installed beside this python")
    runs_dir = args.runs_dir or Path(tempfile.mkdtemp(prefix="cli-latency-"))
    env = {**os.environ, "MNIST_TUI_RUNS": str(runs_dir), "COLUMNS": "120"}
    env.pop("MNIST_TUI_EXPERIMENTS", None)
    # warm the page cache and any on-disk caches once, as a user's second command would be
    for cmd in COMMANDS:
        subprocess.run([exe, *cmd], cwd=ROOT, env=env, capture_output=True, check=False)
    print(f"python {sys.version.split()[0]} | {os.cpu_count()} CPUs | median of {args.repeats}")
    print(f"{'command':<22} {'median s':>9} {'min s':>7} {'max s':>7}  torch imported")
    for cmd in COMMANDS:
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            subprocess.run([exe, *cmd], cwd=ROOT, env=env, capture_output=True, check=False)
            times.append(time.perf_counter() - t0)
        probe = subprocess.run(
            [
                sys.executable,
                "-X",
                "importtime",
                "-c",
                "import sys; from mnist_tui.cli import main; sys.argv[0]='mnist-tui'; main()",
                *cmd,
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        torch_in = any(
            line.rsplit("|", 1)[-1].strip() == "torch" for line in probe.stderr.splitlines()
        )
        label = "mnist-tui " + " ".join(cmd)
        print(
            f"{label:<22} {statistics.median(times):>9.3f} {min(times):>7.3f} "
            f"{max(times):>7.3f}  {'yes' if torch_in else 'no'}"
        )


if __name__ == "__main__":
    main()
