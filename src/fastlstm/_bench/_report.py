"""The benchmark report: structured results, rendered as markdown or JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastlstm._bench._timing import log

__all__ = ["Report", "fmt", "ratio", "table"]


def fmt(v: float | None, digits: int = 2) -> str:
    """A number with about three significant digits, or 'n/a'.

    Examples
    --------
    >>> fmt(1234.5), fmt(12.345), fmt(0.12345), fmt(None)
    ('1234', '12.3', '0.12', 'n/a')
    """
    if v is None or not np.isfinite(v):
        return "n/a"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.{digits}f}"


def ratio(peer: float | None, ours: float | None) -> str:
    """``peer / ours`` as e.g. '1.85x' (> 1: fastlstm faster).

    Examples
    --------
    >>> ratio(3.0, 2.0), ratio(None, 2.0)
    ('1.50x', 'n/a')
    """
    if peer is None or ours is None or ours <= 0:
        return "n/a"
    return f"{peer / ours:.2f}x"


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table.

    Examples
    --------
    >>> print(table(["a", "b"], [["1", "2"]]))
    | a | b |
    |---|---|
    | 1 | 2 |
    """
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


@dataclass
class Report:
    """Results and notes of one run: markdown sections and the same numbers as data.

    Examples
    --------
    >>> r = Report(header=["## title"], echo=False)
    >>> r.note("a note")
    >>> r.data["dense"] = [{"threads": 1}]
    >>> print(r.render())
    ## title
    <BLANKLINE>
    ### Notes
    <BLANKLINE>
    - a note
    <BLANKLINE>
    >>> r.to_json()["notes"], r.to_json()["dense"]
    (['a note'], [{'threads': 1}])
    """

    header: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    parity: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    echo: bool = True  # notes also go to stderr as they come

    def note(self, msg: str) -> None:
        """Record a note (once) and echo it to stderr."""
        if msg not in self.notes:
            self.notes.append(msg)
            if self.echo:
                log(f"note: {msg}")

    def render(self) -> str:
        """The whole report as markdown."""
        parts = ["\n".join(self.header), *self.sections]
        if self.parity:
            parts.append("### Parity checks (max abs difference vs fastlstm)\n\n"
                         + "\n".join(self.parity))
        if self.notes:
            parts.append("### Notes\n\n" + "\n".join(f"- {n}" for n in self.notes))
        return "\n\n".join(parts) + "\n"

    def to_json(self) -> dict[str, Any]:
        """The results as a JSON-serializable dict (sections, parity lines, notes)."""
        out = dict(self.data)
        out["parity"] = list(self.parity)
        out["notes"] = list(self.notes)
        return out

    def dumps(self) -> str:
        """:meth:`to_json` as indented JSON text (non-finite numbers become null)."""
        return json.dumps(_finite(self.to_json()), indent=2)


def _finite(obj: Any) -> Any:
    """``obj`` with NaN/inf floats replaced by None (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
