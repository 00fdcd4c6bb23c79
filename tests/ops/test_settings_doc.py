"""README lists every setting with its default, as the settings model states them."""

from __future__ import annotations

from pathlib import Path

from beakerd.settings import Settings
from beakerd.settings_doc import settings_table, with_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_holds_the_settings_table_the_model_makes() -> None:
    text = README.read_text()
    assert with_table(text) == text, "run: python -m beakerd.settings_doc README.md"


def test_every_setting_is_described() -> None:
    undocumented = [n for n, f in Settings.model_fields.items() if not f.description]
    assert undocumented == []
    assert settings_table().count("\n") == len(Settings.model_fields) + 1
