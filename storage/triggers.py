"""Row triggers written once: one body of SQL statements, wrapped the way each engine wants.

SQLite puts the statements between `BEGIN` and `END` in the trigger itself; PostgreSQL runs a
PL/pgSQL function that the trigger names. The statements inside (`INSERT ... ON CONFLICT`,
`NEW.col`, `OLD.col`, CASE) mean the same on both, so only the wrapping differs. The result is
one migration step per engine (storage/database.py `Migration`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from storage.database import Dialect


@dataclass(frozen=True, slots=True)
class Trigger:
    name: str
    # "INSERT", "DELETE" or "UPDATE OF column", on `table`, after the row changed.
    event: str
    table: str
    statements: Sequence[str]
    when: str | None = None

    def sqlite(self) -> str:
        when = f" WHEN {self.when}" if self.when else ""
        body = "".join(f"    {statement};\n" for statement in self.statements)
        return (
            f"CREATE TRIGGER {self.name} AFTER {self.event} ON {self.table} FOR EACH ROW{when}\n"
            f"BEGIN\n{body}END;\n"
        )

    def postgresql(self) -> str:
        when = f" WHEN ({self.when})" if self.when else ""
        body = "".join(f"    {statement};\n" for statement in self.statements)
        return (
            f"CREATE FUNCTION {self.name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN\n{body}    RETURN NULL;\nEND $$;\n"
            f"CREATE TRIGGER {self.name} AFTER {self.event} ON {self.table}"
            f" FOR EACH ROW{when} EXECUTE FUNCTION {self.name}();\n"
        )


def trigger_migration(triggers: Sequence[Trigger], prelude: str = "") -> dict[Dialect, str]:
    """A migration step: `prelude` (portable DDL and DML), then the triggers in each dialect."""
    before = prelude + ";\n" if prelude.strip() else ""
    return {
        "sqlite": before + "".join(t.sqlite() for t in triggers),
        "postgresql": before + "".join(t.postgresql() for t in triggers),
    }
