"""Where an experiment's settings and reported figure come from: `[reference]` provenance.

Plain strings, shared by `mnist-tui show` (Rich) and the console's experiment screen.
"""

from __future__ import annotations

from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.views.visible import visible


def provenance_lines(spec: ExperimentSpec) -> list[str]:
    """`settings:` (repository @ commit, files, notebook cells), `figure:` and `notes:`."""
    ref = spec.reference
    lines = []
    if ref.repository:
        cells = f" (cells {', '.join(map(str, ref.cells))})" if ref.cells else ""
        files = ", ".join(ref.files)
        lines.append(f"settings: {ref.repository} @ {ref.commit[:12]}  {files}{cells}")
        if ref.figure_file:
            at = f" line {ref.figure_line}" if ref.figure_line else ""
            commit = (ref.figure_commit or ref.commit)[:12]
            lines.append(f"figure:   {ref.repository} @ {commit}  {ref.figure_file}{at}")
    if ref.notes:
        lines.append(f"notes:    {ref.notes}")
    return [visible(line, multiline=True) for line in lines]


def provenance_cell(spec: ExperimentSpec) -> str:
    """One table cell: "owner/name@abc1234 file (cells 1,3)", or "" without provenance."""
    ref = spec.reference
    if not ref.repository:
        return ""
    cells = f" (cells {','.join(map(str, ref.cells))})" if ref.cells else ""
    return visible(f"{ref.repository}@{ref.commit[:7]} {' + '.join(ref.files)}{cells}")
