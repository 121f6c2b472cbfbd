"""How figures are written, in the report's table cells and in the progress lines of a run."""

from __future__ import annotations

from bench.cells import Cell
from bench.results import CellResult

NOISY = 0.10  # a cell where other processes used more than this share of the machine is marked


def progress(text: str) -> None:
    print(text, flush=True)


def describe_result(cell: Cell, result: CellResult) -> str:
    if result.status != "ok":
        return f"{result.status}: {result.note}"
    errors = f"errors {result.error_total}" + (f" {result.errors}" if result.error_total else "")
    extra = f", {result.expected_status:,} expected {cell.expect}s" if result.expected_status else ""
    return (f"{result.value(cell.unit):,.1f} {cell.unit}, p99 {result.p99_ms:.1f} ms, {errors}{extra}"
            + (f", CPU {format_cpu(result.cpu)}" if result.cpu else "")
            + (f" [{result.note}]" if result.note else ""))


def format_cpu(shares: dict[str, float]) -> str:
    """server · wrk · other, as shares of the whole machine."""
    if not shares:
        return "n/a"
    text = " · ".join(f"{shares[key] * 100:.0f}%" for key in ("server", "client", "other"))
    return text + (" ⚠" if shares["other"] > NOISY else "")


def format_value(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.1f} {unit}"


def format_ratio(ratio: float, target: float | None = None) -> str:
    """Two decimals, three when two would round a miss up to the target (0.996 -> "1.00")."""
    if target is not None and ratio < target <= round(ratio, 2):
        return f"{ratio:.3f}×"
    return f"{ratio:.2f}×"


def format_errors(cell: Cell, result: CellResult) -> str:
    parts = [f"{name} {count:,}" for name, count in result.errors.items() if count]
    text = f"{result.error_total:,}" + (f" ({', '.join(parts)})" if parts else "")
    if result.expected_status:
        text += f"; {result.expected_status:,} expected {cell.expect}s"
    if result.eof_bodies:
        text += f"; {result.eof_bodies:,} close-delimited bodies¹"
    return text


def cell_text(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def met(ok: bool) -> str:
    return "met" if ok else "**not met**"
