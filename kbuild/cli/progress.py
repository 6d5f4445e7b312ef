"""What a bake shows while it runs: a live table of every image on a terminal, one line per
change otherwise, JSON lines for machines, or BuildKit's own output (`--progress plain`)."""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from kbuild.cli.options import Progress

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

COLOURS = {
    "waiting": "dim",
    "building": "bold",
    "exporting": "blue",
    "pushing": "blue",
    "loading": "blue",
    "cached": "cyan",
    "built": "green",
    "failed": "red",
    "parent_error": "red",
}
DONE = frozenset({"cached", "built", "failed", "parent_error"})


@dataclass
class Row:
    state: str = "waiting"
    step: str = ""
    started: float | None = None
    finished: float | None = None

    def elapsed(self, now: float) -> float:
        return 0.0 if self.started is None else (self.finished or now) - self.started


@dataclass
class Board:
    """Every image's state. Use it as `on_state` of a bake and `say` of its messages."""

    progress: Progress
    given_console: Console | None = None  # made when first needed: `--progress quiet` never loads rich
    clock: Any = time.monotonic
    rows: dict[str, Row] = field(default_factory=dict)
    live: Any = None  # rich's Live, on a terminal

    @functools.cached_property
    def console(self) -> Console:
        if self.given_console is not None:
            return self.given_console
        from rich.console import Console

        return Console(stderr=True, highlight=False, soft_wrap=True)

    @functools.cached_property
    def mode(self) -> str:
        if self.progress is Progress.auto:
            return "live" if self.console.is_terminal else "lines"
        return self.progress.value

    def __enter__(self) -> Board:
        if self.mode == "live":
            from rich.live import Live  # only a terminal needs it

            self.live = Live(
                self.table(), console=self.console, refresh_per_second=4, get_renderable=self.table
            )
            self.live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def state(self, image: str, state: str, step: str = "") -> None:
        if image.startswith("probe-"):
            return  # a probe's state is its image's
        row = self.rows.setdefault(image, Row())
        now = self.clock()
        if state in ("building", "exporting") and row.started is None:
            row.started = now
        if state in DONE:
            row.finished = now
        changed = state != row.state
        row.state, row.step = state, step
        if self.mode == "json":
            print(
                json.dumps(
                    {"image": image, "state": state, "step": step, "seconds": round(row.elapsed(now), 1)}
                ),
                file=sys.stdout,
                flush=True,
            )
        elif self.mode == "lines" and changed and state != "waiting":
            self.console.print(f"[{COLOURS.get(state, '')}]{state:<12}[/] {image}")

    def say(self, text: str) -> None:
        if self.mode == "json":
            print(json.dumps({"message": self.console.render_str(text).plain}), file=sys.stdout, flush=True)
        elif self.mode != "quiet":
            self.console.print(text)

    def table(self) -> Table:
        from rich.table import Table

        now = self.clock()
        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        for column in ("image", "state", "time", "step"):
            table.add_column(
                column, no_wrap=True, overflow="ellipsis", justify="right" if column == "time" else "left"
            )
        for image, row in self.rows.items():
            seconds = f"{row.elapsed(now):.0f} s" if row.started is not None else ""
            step = row.step if row.state in ("building", "exporting") else ""
            colour = COLOURS.get(row.state, "")
            table.add_row(image, f"[{colour}]{row.state}[/]", seconds, step[:80])
        counts = _counts(row.state for row in self.rows.values())
        table.caption = ", ".join(f"{n} {state}" for state, n in counts.items())
        return table


def _counts(states: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for state in states:
        out[state] = out.get(state, 0) + 1
    return out
