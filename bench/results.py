"""A run's figures (CellResult per server and cell, Run for the whole run, as JSON too) and how
they compare: which results are usable, the best C and Python-hosted server of a cell, ratios to them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from bench import peers
from bench.cells import CELLS, Cell, cell_by_key
from bench.servers import BASELINE


@dataclass
class CellResult:
    server: str
    cell: str
    status: str = "ok"  # ok | skipped | failed | not available
    note: str = ""
    requests: int = 0
    bytes: int = 0
    duration_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    expected_status: int = 0  # responses with the cell's expected error status (the 404 cell)
    probe: str = ""  # what one request before the load got: "200, 1024 bytes"
    probe_ok: bool = False
    framing: str = ""  # how the probe's body was delimited: length | chunked | close
    eof_bodies: int = 0  # read "errors" that were bodies ended by closing the connection (wrk #462)
    cpu: dict[str, float] = field(default_factory=dict)  # machine shares: server, client, other, steal
    wire_gzip: int = 0  # the listing's body on the wire to a client that accepts gzip (0: not probed)
    crowd: str = ""  # connection cells: what the idle or slow crowd beside the load did
    repeat: int = 1  # connection cells run more than once (--idle-rounds): which run this is

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())

    def value(self, unit: str) -> float:
        if self.duration_s <= 0:
            return 0.0
        if unit == "MB/s":
            return self.bytes / self.duration_s / 1e6
        return self.requests / self.duration_s


@dataclass
class Run:
    machine: dict[str, str]
    settings: dict[str, object]
    servers: dict[str, dict]  # key -> {"label", "kind", "command", "status", "note", "first_response_s", ...}
    results: list[CellResult]
    memory: dict[str, dict] = field(default_factory=dict)  # cgibox front -> the RSS cell's figures
    profiles: dict[str, dict] = field(default_factory=dict)  # front -> cell -> py-spy summary

    def get(self, server: str, cell: str, repeat: int = 1) -> CellResult | None:
        for result in self.results:
            if result.server == server and result.cell == cell and result.repeat == repeat:
                return result
        return None

    def repeats(self, server: str, cell: str) -> list[int]:
        """The runs of this server's cell (1, 2, … when the connection cells were repeated)."""
        return sorted(r.repeat for r in self.results if r.server == server and r.cell == cell)

    @classmethod
    def from_json(cls, data: dict) -> Run:
        fields = {f for f in CellResult.__dataclass_fields__}
        results = [CellResult(**{k: v for k, v in r.items() if k in fields}) for r in data["results"]]
        return cls(data["machine"], data["settings"], data["servers"], results, data.get("memory", {}),
                   data.get("profiles", {}))

    def to_json(self) -> dict:
        results = []
        for r in self.results:
            cell = cell_by_key(r.cell)
            results.append(dict(asdict(r), value=r.value(cell.unit),
                                ratio_text=ratio_summary(self, r.server, cell) if cell in CELLS else ""))
        return {"machine": self.machine, "settings": self.settings, "servers": self.servers,
                "cells": [asdict(cell) for cell in CELLS], "results": results, "memory": self.memory,
                "profiles": self.profiles}


def usable(result: CellResult | None) -> bool:
    """Measured, and answered rightly: fast wrong answers (a wrong probe, or more than 1 % of the
    responses in error) compare to nothing."""
    return (result is not None and result.status == "ok" and result.probe_ok and result.duration_s > 0
            and result.error_total <= 0.01 * max(result.requests, 1))


def value_of(run: Run, server: str, cell: Cell) -> float | None:
    result = run.get(server, cell.key)
    return result.value(cell.unit) if usable(result) else None


def best_of(run: Run, cell: Cell, kinds: tuple[str, ...]) -> str | None:
    """The key of the fastest server of these kinds in this cell, or None when none was measured."""
    measured = [(value, key) for key, info in run.servers.items() if info.get("kind") in kinds
                and (value := value_of(run, key, cell)) is not None]
    return max(measured)[1] if measured else None


def ratio_to(run: Run, server: str, other: str | None, cell: Cell) -> float | None:
    if other is None:
        return None
    mine, theirs = value_of(run, server, cell), value_of(run, other, cell)
    if mine is None or not theirs:
        return None
    return mine / theirs


def ratio_of(run: Run, server: str, cell: Cell) -> float | None:
    """The server's figure over http.server's in the same cell."""
    return ratio_to(run, server, BASELINE, cell)


def references(run: Run, cell: Cell) -> list[tuple[str, str | None]]:
    """(what, server key): the best C server, the best Python-hosted server and http.server of the run."""
    return [("best C", best_of(run, cell, peers.C_PEERS)),
            ("best Python-hosted", best_of(run, cell, peers.PYTHON_PEERS)), ("http.server", BASELINE)]


def ratio_summary(run: Run, server: str, cell: Cell) -> str:
    """"0.13× nginx · 1.20× twisted web · 8.30× http.server" for the chart and the progress lines."""
    parts, seen = [], {server}
    for _, key in references(run, cell):
        if key in seen:
            continue
        seen.add(key)
        ratio = ratio_to(run, server, key, cell)
        if ratio is not None and key is not None:
            parts.append(f"{ratio:.2f}× {run.servers[key]['label']}")
    return " · ".join(parts)
