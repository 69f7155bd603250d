"""A Rich console that never writes a control character it did not make itself.

The views pass stored text through `views.visible` already; this is the second line, for
text that reaches the CLI's console some other way (an error naming a file, a value a
user typed). Rich's markup escaping does not touch ESC, so each plain segment (text
with or without a style, not Rich's own cursor controls) is made visible as it is
written; styles are rendered after, so the tool's colours are unaffected.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from rich.console import Console
from rich.segment import Segment

from mnist_tui.views.visible import visible


def _visible_segments(buffer: Iterable[Segment]) -> Iterator[Segment]:
    for seg in buffer:
        if seg.control:  # Rich's own cursor moves (progress bars): not stored text
            yield seg
        else:
            yield Segment(visible(seg.text, multiline=True), seg.style, None)


class SafeConsole(Console):
    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(_visible_segments(buffer))
