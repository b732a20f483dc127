from __future__ import annotations

from pathlib import Path

from luna_provider.settings import SETTINGS_DOC, mask_url

README = Path(__file__).resolve().parents[2] / "README.md"


def test_mask_url_hides_only_passwords() -> None:
    assert mask_url("postgresql://luna:secret@db:5432/luna") == "postgresql://luna:***@db:5432/luna"
    assert mask_url("postgresql://luna@db/luna") == "postgresql://luna@db/luna"
    assert mask_url("file:///var/lib/luna") == "file:///var/lib/luna"


def test_readme_documents_every_setting() -> None:
    text = README.read_text()

    assert [name for name in SETTINGS_DOC if f"`{name}`" not in text] == []
