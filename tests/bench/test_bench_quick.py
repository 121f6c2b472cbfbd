"""`make bench` works: one `make bench QUICK=1` run (about 1 s per cell) produces a table with every
cell for every server. Speed is never asserted here; docs/benchmarks.md holds the real figures."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

from bench import cells, peers, python_peers, run, servers, targets

REPO = Path(__file__).resolve().parents[2]


def gunicorn_front_exists() -> bool:
    sys.path.insert(0, str(REPO / "app"))
    return importlib.util.find_spec("cgibox.fronts.gunicorn_app") is not None


def test_quick_run_writes_a_row_for_every_cell_and_server(quick_run):
    out, _ = quick_run
    table = (out / "quick.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    for cell in cells.CELLS:
        for server in servers.SERVERS:
            start = f"| {cell.title} | {cell.connections} | {server.label} |"
            assert any(row.startswith(start) for row in rows), f"no row for {server.label} / {cell.title}"
    assert "## Targets (threading front)" in table
    for cell_key, peer, least in targets.PEER_TARGETS:
        name = (peer if peer == targets.BEST_PYTHON
                else next(s.label for s in servers.SERVERS if s.key == peer))
        assert f"| {cells.cell_by_key(cell_key).title} ≥ {least:g}× {name} |" in table
    assert "| zero errors in every cell |" in table
    assert "| listing page ≤ 40 KB on the wire with gzip |" in table
    # the connection cells ran on the threading front, each with a row and a target; the other
    # fronts' connection targets say they were not measured
    assert "## Connection targets (threading, forking, gunicorn gthread fronts)" in table
    for cell in cells.CONN_CELLS:
        assert f"| cgibox threading | {cell.title} |" in table
    assert "| cgibox threading | RSS holding 1,000 idle |" in table
    for target in ("beside idle: throughput ≥ 90% of alone, in 2 runs back to back",
                   "beside idle: p99 ≤ 2× alone, in 2 runs back to back",
                   "beside slow heads: p99 ≤ 50 ms", "RSS holding 1,000 idle ≤ 100 MB more"):
        assert f"| cgibox threading | {target} |" in table
    assert "| cgibox gunicorn gthread | beside slow heads: p99 ≤ 250 ms | n/a | not measured (" in table
    assert "## No worse than the previous run (" in table
    # every target row has a status: met, not met, or not measured with why
    section = table.split("## Targets (threading front)")[1].split("## Where the time goes")[0]
    for row in (line for line in section.splitlines() if line.startswith("| ") and "---" not in line):
        status = row.rstrip(" |").rsplit("| ", 1)[1]
        assert status in ("met", "**not met**", "status") or status.startswith("not measured ("), row
    for key in ("CPU", "cores", "Python", "wrk", "date"):
        assert f"| {key} | " in table


def test_every_available_server_ran_every_cell(quick_run):
    out, _ = quick_run
    data = json.loads((out / "quick.json").read_text())
    for server in servers.SERVERS:
        results = {r["cell"]: r for r in data["results"] if r["server"] == server.key
                   and r["cell"] in {c.key for c in cells.CELLS}}
        assert set(results) == {cell.key for cell in cells.CELLS}, server.key
        if server.key.startswith("gunicorn") and not gunicorn_front_exists():
            assert all(r["status"] == "not available" for r in results.values())
            continue
        if not server.is_cgibox and peers.missing(server.kind):
            # a peer that is not installed is reported, and the run went on
            assert all(r["status"] == "not available" for r in results.values()), server.key
            assert data["servers"][server.key]["status"] == "not available"
            continue
        for cell_key, result in results.items():
            if server.key == servers.BASELINE and cell_key == "cgi" and not peers.has_stdlib_cgi():
                assert result["status"] == "not served"
                continue
            if (server.kind, cell_key) in peers.CANNOT_SERVE:
                assert result["status"] == "not served" and result["note"], (server.key, cell_key)
                continue
            assert result["status"] == "ok", (server.key, cell_key, result["note"])
            assert result["bytes"] > 0 and result["duration_s"] > 0, (server.key, cell_key)
    conn = {r["cell"]: r for r in data["results"] if r["server"] == "threading"
            and r["cell"] in {c.key for c in cells.CONN_CELLS}}
    assert set(conn) == {c.key for c in cells.CONN_CELLS}
    assert all(r["status"] == "ok" for r in conn.values()), conn
    assert conn["conn-alone"]["requests"] > 0
    memory = data["memory"]["threading"]
    assert memory["status"] == "ok" and memory["rss_idle_mb"] > 0


def test_python_hosted_peers_ran_or_say_why(quick_run):
    """uvicorn + Starlette, aiohttp and granian each served the cells it can from its own venv,
    or is "not available" with the reason (no network for pip, a wheel missing)."""
    out, stdout = quick_run
    data = json.loads((out / "quick.json").read_text())
    table = (out / "quick.md").read_text()
    for kind in python_peers.KINDS:
        info = data["servers"][kind]
        assert f"| {info['label']} | `" in table
        if info["status"] != "ok":
            assert info["status"] == "not available" and info["note"], info
            continue
        ran = {r["cell"]: r for r in data["results"] if r["server"] == kind}
        assert ran["file-1k"]["status"] == "ok" and ran["404"]["status"] == "ok", kind
        assert ran["cgi"]["status"] == "not served", kind
    assert "Python-hosted peers" in stdout


def test_chart_and_progress(quick_run):
    out, stdout = quick_run
    charts = [path for path in (out / "quick.png", out / "quick.svg") if path.exists()]
    assert charts and charts[0].stat().st_size > 0
    assert charts[0].name in (out / "quick.md").read_text()
    total = (len(servers.SERVERS) * len(cells.CELLS) + len(cells.CONN_CELLS) + 1
             + len(run.QUICK_TLS_SERVERS) * len(cells.TLS_CELLS))
    assert f"[ 1/{total}]" in stdout and f"[{total}/{total}]" in stdout


def test_tls_cells_ran_or_say_why(quick_run):
    """Every TLS server of a quick run has both TLS cells: measured over HTTPS, or a cgibox front
    that refuses --tls-cert reported as having no TLS, or a peer that is not installed."""
    out, _ = quick_run
    data = json.loads((out / "quick.json").read_text())
    table = (out / "quick.md").read_text()
    assert "## TLS cells" in table and "| × nginx |" in table
    for key in run.QUICK_TLS_SERVERS:
        spec = next(s for s in servers.SERVERS if s.key == key)
        for cell in cells.TLS_CELLS:
            result = next(r for r in data["results"] if r["server"] == key and r["cell"] == cell.key)
            assert f"| {cell.title} | {cell.connections} | {spec.label} |" in table
            if result["status"] == "ok":
                assert result["probe_ok"] and result["bytes"] > 0, (key, cell.key, result["probe"])
            elif spec.is_cgibox and result["status"] == "no TLS on this front":
                assert "--tls-cert" in result["note"]
            else:
                assert result["status"] == "not available", (key, cell.key, result["status"], result["note"])
                gone = not gunicorn_front_exists() if key.startswith("gunicorn") else peers.missing(spec.kind)
                assert gone, (key, cell.key, result["note"])
            if key == "gunicorn-gthread" and gunicorn_front_exists():
                assert result["status"] == "ok", result["note"]  # gunicorn has served TLS since issue 12


def test_quick_run_leaves_docs_alone():
    args = run.parse_args(["--quick"])
    assert args.output == REPO / "bench" / "results" / "quick.md"
    assert args.chart.parent == args.json.parent == REPO / "bench" / "results"
    assert args.duration <= 1.0


def test_render_only_rewrites_the_same_table(quick_run, tmp_path):
    out, _ = quick_run
    again = tmp_path / "again.md"
    assert run.main(["--render-only", "--json", str(out / "quick.json"), "--output", str(again),
                       "--chart", str(tmp_path / "again.png")]) == 0
    # the chart may be a PNG or an SVG depending on whether this interpreter has matplotlib
    chart = re.compile(r"(quick|again)\.(png|svg)")
    assert chart.sub("CHART", again.read_text()) == chart.sub("CHART", (out / "quick.md").read_text())
