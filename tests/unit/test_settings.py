from __future__ import annotations

from luna_provider.settings import mask_url


def test_mask_url_hides_only_passwords() -> None:
    assert mask_url("postgresql://luna:secret@db:5432/luna") == "postgresql://luna:***@db:5432/luna"
    assert mask_url("postgresql://luna@db/luna") == "postgresql://luna@db/luna"
    assert mask_url("file:///var/lib/luna") == "file:///var/lib/luna"
