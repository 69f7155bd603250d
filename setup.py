"""Build step: the shipped experiments go inside the package as package data.

The repository keeps them in one place, the top-level experiments/ directory; a wheel
carries a copy as mnist_tui/experiments/*.toml, which `mnist-tui list` finds when run
outside a checkout (config.loading.shipped_experiments_dir). An editable install reads
experiments/ from the checkout itself. The sdist carries experiments/ (MANIFEST.in).
Everything else is in pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithExperiments(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # the checkout's experiments/ is read in place
        source = ROOT / "experiments"
        files = sorted(source.glob("*.toml"))
        if not files:
            raise SystemExit(f"no experiments to ship in {source}")
        target = Path(self.build_lib) / "mnist_tui" / "experiments"
        self.mkpath(str(target))
        for f in files:
            self.copy_file(str(f), str(target / f.name))


setup(cmdclass={"build_py": BuildWithExperiments})
