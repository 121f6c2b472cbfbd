"""`make bench`; BENCH and REPO are where the bench and the checkout it measures are.

Its modules, each importing only those above it in this list:
    cells.py        what is measured: the cells and the generated corpus
    cpu.py          who used the CPUs during a cell (and CORES)
    certs.py        the TLS cells' self-signed certificate, made with openssl
    python_peers.py uvicorn + Starlette, aiohttp, granian: their own venv, installs, commands
    peer_apps.py    (loaded by those peers, not by the bench) their applications
    peers.py        every peer: nginx, lighttpd, twisted, http.server and the above
    connections.py  the connection cells' crowds (clients.py) and process-group memory
    servers.py      the servers under test: start, wait for the first answer, stop, one GET
    results.py      a run's figures (CellResult, Run) and how they compare (ratios, usable)
    wrk.py          one cell under wrk: the probe, wrk's command line, parsing its figures
    machine.py      the machine table and the descriptor limit
    formatting.py   how figures are written in the report and the progress lines
    targets.py      the issues' targets and the sections that judge them
    profile.py      py-spy around the profiled cells
    chart.py        the chart beside the report
    report.py       docs/benchmarks.md from a Run
    runner.py       a whole run: every server through its cells, one at a time
    run.py          the command line (`python bench/run.py --help`)
"""

from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
