"""`mnist-tui devices`: each device the worker serves, its slots and runs, memory, use."""

from __future__ import annotations

from typing import Annotated

import typer

from mnist_tui.cli.options import JsonOut, RunsDir, app, console, context_stores, print_json

REFRESH = 2.0  # seconds between two readings with --watch


@app.command()
def devices(
    ctx: typer.Context,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help=f"Refresh every {REFRESH:g} s until Ctrl-C.")
    ] = False,
    json_out: JsonOut = False,
    runs_dir: RunsDir = None,
) -> None:
    """Devices the worker trains on: slots and the runs holding them, memory, utilisation."""
    from mnist_tui.runs.devices import as_json, device_status, prime_cpu
    from mnist_tui.views.devices import devices_table
    from mnist_tui.views.render import rich_table

    _, store = context_stores(ctx, None, runs_dir)
    prime_cpu(0.3)  # CPU use is a rate: measure over a short interval, not since boot
    if json_out:
        print_json(as_json(device_status(store)))
        return
    if not watch:
        console.print(rich_table(devices_table(device_status(store))))
        return
    import time

    from rich.live import Live

    try:
        with Live(console=console, auto_refresh=False) as live:
            while True:
                live.update(rich_table(devices_table(device_status(store))), refresh=True)
                time.sleep(REFRESH)
    except KeyboardInterrupt:
        pass
