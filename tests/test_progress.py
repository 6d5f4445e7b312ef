"""The live view of a bake: what a terminal, a log and a machine each see as images change state."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from kbuild.cli.options import Progress
from kbuild.cli.progress import Board


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def events(board: Board, clock: Clock) -> None:
    for image in ("base", "memcached", "keystone"):
        board.state(image, "waiting")
    board.state("base", "building", "[base 2/5] RUN apt-get install")
    clock.now += 12
    board.state("base", "built")
    board.state("probe-base", "building", "probe")  # a probe is its image's business
    board.state("memcached", "building", "[memcached 1/3] FROM base")
    clock.now += 3
    board.state("memcached", "exporting", "exporting to oci image format")
    board.state("keystone", "cached")


def test_a_terminal_sees_a_live_table_of_every_image() -> None:
    clock = Clock()
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    board = Board(Progress.auto, console, clock=clock)
    assert board.mode == "live"
    events(board, clock)
    out = Console(file=io.StringIO(), width=120, record=True)
    out.print(board.table())
    text = out.export_text()
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert "built" in lines["base"] and "12 s" in lines["base"]
    assert "exporting" in lines["memcached"] and "3 s" in lines["memcached"]
    assert "exporting to oci image format" in lines["memcached"]
    assert "cached" in lines["keystone"]
    assert "probe-base" not in text
    assert "1 built, 1 exporting, 1 cached" in text


def test_a_log_gets_one_line_per_change() -> None:
    clock = Clock()
    stream = io.StringIO()
    board = Board(Progress.auto, Console(file=stream, width=120), clock=clock)
    assert board.mode == "lines"
    events(board, clock)
    lines = [line.split() for line in stream.getvalue().splitlines()]
    assert lines == [
        ["building", "base"],
        ["built", "base"],
        ["building", "memcached"],
        ["exporting", "memcached"],
        ["cached", "keystone"],
    ]


def test_machines_get_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    clock = Clock()
    board = Board(Progress.json, Console(file=io.StringIO()), clock=clock)
    events(board, clock)
    board.say("[green]done[/]")
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"image": "base", "state": "built", "step": "", "seconds": 12.0} in records
    assert records[-1] == {"message": "done"}
    assert all(record.get("image") != "probe-base" for record in records)
