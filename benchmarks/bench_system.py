"""What the system metrics cost (issue 20 item 6; target: under 0.5% of training time).

The SystemMetrics callback's own time inside its hooks (bench_views.py's wrapper: the
RunLogger writing its events is not counted here) over the time of the epochs, in one run of
glyphs with its default LeNet-5 and one of spirals with its default MLP (a batch of spirals
is the cheapest there is, so its per-batch clock read weighs most). Run:

    PYTHONPATH=. python benchmarks/bench_system.py [--glyph-epochs 4] [--spiral-epochs 300]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from bench_views import measured_run

from nnlib.config import ExperimentConfig


def share(dataset: str, epochs: int) -> None:
    with tempfile.TemporaryDirectory() as root:
        config = ExperimentConfig(dataset=dataset, epochs=epochs, run_dir=str(Path(root) / "r"))
        sizes, spent, _ = measured_run(config)
    seconds, own = sum(sizes.times), spent.get("SystemMetrics", 0.0)
    print(
        f"{dataset}: {epochs} epochs in {seconds:.2f} s (load average "
        f"{os.getloadavg()[0]:.2f}); SystemMetrics {own * 1e3:.2f} ms = {own / seconds:.3%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glyph-epochs", type=int, default=4)
    parser.add_argument("--spiral-epochs", type=int, default=300)
    args = parser.parse_args()
    share("glyphs", args.glyph_epochs)
    share("spirals", args.spiral_epochs)


if __name__ == "__main__":
    main()
