"""``flows.progress``: a live line on a terminal, nothing elsewhere."""

import io
import threading

from rich.console import Console

from flows.progress import progress


def test_silent_when_not_a_terminal():
    out = io.StringIO()
    with progress(Console(file=out), "simulating", total=4) as update:
        update(2, 4, "simulating: 2 vectors")
    assert out.getvalue() == ""


def test_bar_on_a_terminal_takes_updates_from_threads():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with progress(console, "building") as update:
        update(description="building: nextpnr-ice40")
        worker = threading.Thread(target=update, args=(3, 8, "vectors simulated"))
        worker.start()
        worker.join()
        console.print()  # a refresh while the bar is live
    text = out.getvalue()
    assert "vectors simulated" in text and "3/8" in text
