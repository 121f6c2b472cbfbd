"""The one Jinja environment: autoescape on, a user's --templates folder first, built-ins second."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta

from cgibox import __version__


def human_size(size: int) -> str:
    """1536 -> '1.5 KiB': short enough for a column, exact bytes go in a title attribute."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def uptime_words(seconds: float) -> str:
    """3725 -> '1 hour, 2 minutes, 5 seconds'."""
    remaining = int(seconds)
    parts: list[str] = []
    for name, span in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, remaining = divmod(remaining, span)
        if count or (name == "second" and not parts):
            parts.append(f"{count} {name}{'' if count == 1 else 's'}")
    return ", ".join(parts)


def time_ago(seconds: float) -> str:
    """3725 -> 'about 1 hour ago': the largest unit only, for a date in words."""
    seconds = max(0, int(seconds))
    if seconds < 10:
        return "just now"
    for name, span in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count = seconds // span
        if count:
            return f"{count} {name}{'' if count == 1 else 's'} ago"
    return "just now"


def utc_text(timestamp: float) -> str:
    """1764615849 -> '2025-12-01 19:04:09 UTC': an exact time for a tooltip."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


class Templates:
    """Renders the named templates; compiled once and cached by Jinja, never per request."""

    def __init__(self, override_dir: Path | None = None, extra_dirs: tuple[Path, ...] = ()) -> None:
        folders = ([override_dir] if override_dir is not None else []) + list(extra_dirs)
        builtin = jinja2.PackageLoader("cgibox", "templates")
        loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(str(folder)) for folder in folders]
        # "builtin/listing.html" is always the built-in page, for an override that extends it
        loaders += [jinja2.PrefixLoader({"builtin": builtin}), builtin]
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=True,
            auto_reload=override_dir is not None,
            undefined=jinja2.ChainableUndefined,
        )
        self.env.filters["human_size"] = human_size
        self.env.filters["uptime_words"] = uptime_words
        self.env.filters["time_ago"] = time_ago
        self.env.filters["utc_text"] = utc_text
        self.env.globals["version"] = __version__

    @functools.lru_cache(maxsize=16)  # noqa: B019 - one Templates per process, lives as long
    def _template(self, name: str) -> jinja2.Template:
        return self.env.get_template(name)

    @functools.lru_cache(maxsize=16)  # noqa: B019 - as _template: once per template and variable
    def uses(self, name: str, variable: str) -> bool:
        """Whether template `name` (or one it extends, includes or imports) reads `variable`, so
        a page may be cached without it when not; a template named at run time counts as reading it."""
        seen: set[str] = set()
        waiting = [name]
        while waiting:
            current = waiting.pop()
            if current in seen:
                continue
            seen.add(current)
            source = self.env.loader.get_source(self.env, current)[0]  # type: ignore[union-attr]
            tree = self.env.parse(source)
            if variable in jinja2.meta.find_undeclared_variables(tree):
                return True
            for referenced in jinja2.meta.find_referenced_templates(tree):
                if referenced is None:
                    return True
                waiting.append(referenced)
        return False

    def render(self, name: str, **context: Any) -> str:
        return self._template(name).render(**context)
