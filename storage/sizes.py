"""Byte counts as people read them (`3.1 KiB`), for logs, command output and the web pages."""

from __future__ import annotations


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str | int) -> int:
    """Bytes from `1048576`, `500M`, `500MiB`, `10G` or `1.5 TiB` (binary units); ValueError."""
    if isinstance(text, int) and not isinstance(text, bool):
        size = text
    else:
        value = str(text).strip().lower().removesuffix("ib").removesuffix("b").rstrip()
        unit = value[-1:] if value[-1:] in "kmgt" else ""
        number = value[: len(value) - len(unit)].strip()
        try:
            size = int(float(number) * _UNITS[unit])
        except (ValueError, OverflowError):
            raise ValueError(f"{str(text)[:32]!r} is not a size such as 500M or 10G") from None
    if size < 0:
        raise ValueError("a size cannot be negative")
    return size
