"""README's table of settings, made from the settings model so it is never written twice.

`python -m beakerd.settings_doc README.md` rewrites the table between the README's markers;
tests/ops/test_settings_doc.py fails when the README and the model disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from beakerd.settings import ENV_PREFIX, Settings

BEGIN = "<!-- settings table: made by `python -m beakerd.settings_doc README.md` -->"
END = "<!-- end of settings table -->"


def _default(name: str, field: FieldInfo) -> str:
    if field.default_factory is list:
        return "none"
    if field.default_factory is not None:
        return "see below" if name != "data_dir" else "`$XDG_DATA_HOME/beakerd`"
    value = field.default
    if value is PydanticUndefined or value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int) and value >= 1 << 20 and value % (1 << 20) == 0:
        return f"`{value}` ({value >> 20} MiB)"
    return f"`{value}`"


def settings_table() -> str:
    lines = [
        "| setting (config file key) | environment | default | what it does |",
        "|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        description = " ".join((field.description or "").split())
        env = f"`{ENV_PREFIX}{name.upper()}`"
        lines.append(f"| `{name}` | {env} | {_default(name, field)} | {description} |")
    return "\n".join(lines)


def with_table(text: str) -> str:
    """`text` with the part between the markers replaced by the current table."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError("the markers of the settings table are missing")
    return text[: start + len(BEGIN)] + "\n" + settings_table() + "\n" + text[end:]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m beakerd.settings_doc README.md", file=sys.stderr)
        return 2
    path = Path(argv[0])
    path.write_text(with_table(path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
