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


def test_every_setting_survives_the_stack_environment(monkeypatch, tmp_path) -> None:
    # the embedded stack hands settings to its processes as str(value): that must read back the same
    from luna_provider.settings import SETTINGS_DOC, load

    monkeypatch.setenv("LUNA_HOME", str(tmp_path))
    monkeypatch.setenv("LUNA_ESTIMATOR_LOCAL_ROOTS", "/srv/images, /mnt/share")
    settings = load()
    for name in SETTINGS_DOC:
        value = getattr(settings, name.removeprefix("LUNA_").lower(), None)
        if value is not None:
            monkeypatch.setenv(name, str(value))

    assert load() == settings
    assert settings.estimator_local_root_list == ("/srv/images", "/mnt/share")
    assert ".jpg" in settings.estimator_extension_list
