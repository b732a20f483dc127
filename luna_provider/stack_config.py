"""Where the embedded stack keeps its secrets, and the environment all of its processes share.

``LUNA_HOME/secrets/stack.json`` (mode 0600) holds the JWT secret, the api-server session key, the
Fernet key and the generated Airflow admin password; it is created once and never logged.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from luna_provider.settings import SETTINGS_DOC, Settings, embedded_database_url

_DEFAULT_ADMIN = "admin"


def secrets_file(home: Path) -> Path:
    """Return the file that holds the stack's generated secrets."""
    return home / "secrets" / "stack.json"


def _passwords_file(home: Path) -> Path:
    return home / "secrets" / "airflow-passwords.json"


def _new_secrets() -> dict[str, str]:
    import base64

    return {
        "jwt_secret": secrets.token_urlsafe(48),
        "api_secret_key": secrets.token_urlsafe(48),
        "fernet_key": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "airflow_password": secrets.token_urlsafe(18),
        "postgres_password": secrets.token_urlsafe(18),
    }


def stack_secrets(home: Path) -> dict[str, str]:
    """Return the stack's generated secrets, creating them (mode 0600) on the first call.

    A secrets file from an older release gets the keys it lacks; existing values never change.
    """
    path = secrets_file(home)
    current = json.loads(path.read_text()) if path.exists() else {}
    fresh = _new_secrets()
    if set(fresh) <= set(current):
        return current
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({**fresh, **current}, out)
    try:
        if current:
            tmp.replace(path)
        else:
            # link() fails if another process created the file first: theirs wins, no torn reads.
            os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return json.loads(path.read_text())


def with_embedded_password(settings: Settings) -> Settings:
    """Return ``settings`` whose embedded service-database URL carries the stack's password."""
    import dataclasses

    password = stack_secrets(settings.home)["postgres_password"]
    if settings.database_url in (
        embedded_database_url(settings.postgres_port),
        embedded_database_url(settings.postgres_port, password=password),
    ):
        return dataclasses.replace(
            settings, database_url=embedded_database_url(settings.postgres_port, password=password)
        )
    return settings


def airflow_url(settings: Settings) -> str:
    """Return the base URL of the stack's Airflow api-server."""
    return f"http://127.0.0.1:{settings.airflow_port}"


def admin_credentials(settings: Settings) -> tuple[str, str]:
    """Return the stack's Airflow admin: the configured user, else ``admin`` with a generated password."""
    if settings.airflow_username:
        return settings.airflow_username, settings.airflow_password
    return _DEFAULT_ADMIN, stack_secrets(settings.home)["airflow_password"]


def embedded_airflow_credentials(settings: Settings) -> tuple[str, str] | None:
    """Return the embedded Airflow admin login if ``settings`` point at the stack of their LUNA_HOME."""
    port = settings.airflow_port
    if settings.airflow_api_url not in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
        return None
    if not secrets_file(settings.home).exists():
        return None
    return admin_credentials(settings)


def _external_airflow_db() -> str:
    return os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")


def needs_embedded_postgres(settings: Settings) -> bool:
    """Return whether the service or the Airflow database lives on the embedded server."""
    password = stack_secrets(settings.home)["postgres_password"]
    embedded_luna = settings.database_url in (
        embedded_database_url(settings.postgres_port),
        embedded_database_url(settings.postgres_port, password=password),
    )
    return embedded_luna or not _external_airflow_db()


def _connection_uri(sqlalchemy_url: str) -> str:
    """Turn a SQLAlchemy URL into an Airflow connection URI (no ``+driver``)."""
    scheme, sep, rest = sqlalchemy_url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


def service_environment(
    settings: Settings, *, dags_folder: Path | None = None, plugins_folder: Path | None = None
) -> dict[str, str]:
    """Return the variables every process of the stack runs with (merge them over ``os.environ``).

    Airflow tuning variables already in the environment (``AIRFLOW__...``) win over the defaults
    chosen here; the ones that wire the stack together do not.
    """
    home = settings.home
    api_server = airflow_url(settings)
    user, password = admin_credentials(settings)
    keys = stack_secrets(home)
    airflow_db = _external_airflow_db() or embedded_database_url(
        settings.postgres_port, "airflow", password=keys["postgres_password"]
    )
    tunables = {
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # Defaults of 5 s and 300 s cost a stall after every task and minutes before a new DAG file.
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW__API__WORKERS": "1",
    }
    env = {key: os.environ.get(key, value) for key, value in tunables.items()}
    env.update(
        {
            "AIRFLOW_HOME": str(home / "airflow"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(settings.airflow_parallelism),
            "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
            "AIRFLOW__API__SECRET_KEY": keys["api_secret_key"],
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(settings.airflow_port),
            "AIRFLOW__API__BASE_URL": api_server,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_server}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{user}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(_passwords_file(home)),
            "AIRFLOW_CONN_LUNA_DEFAULT": _connection_uri(settings.database_url),
        }
    )
    if dags_folder is not None:
        env["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(dags_folder).resolve())
    if plugins_folder is not None:
        env["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(Path(plugins_folder).resolve())
    for name, (default, _) in SETTINGS_DOC.items():
        value = getattr(settings, name.removeprefix("LUNA_").lower(), None)
        env[name] = str(value) if value is not None else os.environ.get(name, default)
    # The stack's own api-server and admin, whatever the defaults of these settings say.
    env.update({"LUNA_AIRFLOW_API_URL": api_server, "LUNA_AIRFLOW_USERNAME": user})
    env["LUNA_AIRFLOW_PASSWORD"] = password
    return env


def write_airflow_passwords(settings: Settings) -> None:
    """Write the admin's password where Airflow's SimpleAuthManager reads it."""
    # The manager generates (and prints) a password only for users missing from this file.
    user, password = admin_credentials(settings)
    fd = os.open(_passwords_file(settings.home), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({user: password}, out)
