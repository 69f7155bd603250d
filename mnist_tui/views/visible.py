"""Stored and user-supplied text made safe to show on a terminal.

An experiment's description, a run's note, tags, overrides, group, failure reason and
its log come from files anyone may have written (a cloned experiment, a training
script's output). A terminal interprets control characters in them: ESC starts a
sequence that can set the window title (OSC 0/2), write the clipboard (OSC 52) or clear
the screen (CSI 2J); C1 0x9b is a one-byte CSI; BEL rings, backspace erases what was
shown. Every face shows such text through `visible`, which writes each control
character as a visible escape instead, never the character itself:

    ESC -> \\x1b   BEL -> \\x07   BS -> \\x08   CR -> \\x0d   DEL -> \\x7f   C1 CSI -> \\x9b

(the notation of Python's `repr`: two hex digits after `\\x`). Newline and tab are kept
where a text of several lines is shown (`multiline=True`: logs, descriptions); in a
table cell or a one-line field only tab is kept. The tool's own colours are Rich
styles, not characters in the text, and are not touched.
"""

from __future__ import annotations

import codecs
import re

# C0 (0x00-0x1f) but newline and tab, DEL, C1 (0x80-0x9f); ESC is C0 0x1b
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def visible(text: object, *, multiline: bool = False) -> str:
    """`text` with every control character shown as `\\xNN`, never interpreted.

    A CR before a newline (a Windows line end) is dropped where newlines are kept."""
    s = text if isinstance(text, str) else str(text)
    if s.isprintable():  # no control character (and no newline): the common case, in C
        return s
    if multiline:
        return _CONTROL_MULTILINE.sub(_escape, s.replace("\r\n", "\n"))
    return _CONTROL.sub(_escape, s)


def has_control(text: str) -> bool:
    """Whether `visible` would change `text` (newlines kept)."""
    return _CONTROL_MULTILINE.search(text) is not None


class VisibleStream:
    """Bytes of a growing log file decoded and made visible piece by piece.

    A multi-byte UTF-8 character or a CR LF cut between two reads is kept until the
    next read completes it, so a followed log shows the same text as a whole one."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._cr = False  # the last piece ended in a CR that a LF may follow

    def feed(self, chunk: bytes, *, final: bool = False) -> str:
        text = self._decoder.decode(chunk, final)
        if self._cr:
            text = "\r" + text
            self._cr = False
        if text.endswith("\r") and not final:
            text, self._cr = text[:-1], True
        return visible(text, multiline=True)
