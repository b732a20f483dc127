"""Service settings, read from ``LUNA_*`` environment variables.

One object feeds the API, the operators and ``luna-tasks standalone``. Every variable is listed in
:data:`SETTINGS_DOC`, which the README and ``GET /config`` are built from.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

#: name -> (default, description). Defaults that depend on ``LUNA_HOME`` are filled in by :func:`load`.
SETTINGS_DOC: dict[str, tuple[str, str]] = {
    "LUNA_HOME": ("~/.luna-tasks", "folder for the embedded PostgreSQL data, Airflow home, objects, logs"),
    "LUNA_DATABASE_URL": ("", "SQLAlchemy URL of the service database (embedded PostgreSQL when empty)"),
    "LUNA_OBJECT_STORE_URL": ("", "fsspec URL for results and samples (``$LUNA_HOME/objects`` when empty)"),
    "LUNA_AIRFLOW_API_URL": (
        "",
        "base URL of the Airflow api-server (``http://127.0.0.1:$LUNA_AIRFLOW_PORT``)",
    ),
    "LUNA_AIRFLOW_USERNAME": ("", "Airflow user for the REST API (empty: no authentication)"),
    "LUNA_AIRFLOW_PASSWORD": ("", "password of that user"),
    "LUNA_API_HOST": ("127.0.0.1", "address the Luna Tasks API binds to"),
    "LUNA_API_PORT": ("5050", "port of the Luna Tasks API"),
    "LUNA_PUBLIC_URL": ("", "external base URL used in callback ``result_url`` (API address when empty)"),
    "LUNA_POSTGRES_PORT": ("5433", "port of the embedded PostgreSQL server"),
    "LUNA_AIRFLOW_PORT": ("8080", "port of the embedded Airflow api-server"),
    "LUNA_AIRFLOW_PARALLELISM": ("4", "Airflow [core] parallelism in the embedded stack"),
    "LUNA_DEFAULT_DESCRIPTOR_VERSION": ("201", "descriptor version used when a request names none"),
    "LUNA_DEFAULT_CLUSTERING_THRESHOLD": ("0.5", "clustering similarity threshold when a task gives none"),
    "LUNA_MATCH_BLOCK_SIZE": ("2048", "rows per block of a similarity matrix product"),
    "LUNA_CLUSTERING_SUBTASK_SIZE": ("20000", "reference rows one clustering subtask handles"),
    "LUNA_MAX_SUBTASKS": ("512", "upper bound on the subtasks one task is split into"),
    "LUNA_TRIGGER_RETRIES": ("5", "attempts to trigger a DAG run before the task is failed"),
    "LUNA_RECONCILE_INTERVAL": ("30", "seconds between checks for tasks whose DAG run was lost"),
    "LUNA_CALLBACK_TIMEOUT": ("10", "default timeout of a notification callback, seconds"),
    "LUNA_MAX_BODY_SIZE": ("16777216", "largest request body the API accepts, bytes"),
    # read where they are used, listed here so that every setting is documented in one place
    "LUNA_DAGS_FOLDER": ("", "DAGs folder of the embedded stack (the repository's ``dags/`` when empty)"),
    "LUNA_PLUGINS_FOLDER": ("", "plugins folder of the embedded stack (the repository's ``plugins/``)"),
    "LUNA_TELEGRAM_API_URL": ("https://api.telegram.org", "Telegram Bot API used by telegram callbacks"),
    "LUNA_EXPORTER_SUBTASK_SIZE": (
        "10000",
        "objects one exporter or reporter subtask writes to its CSV part",
    ),
    "LUNA_EXPORTER_BATCH_SIZE": (
        "1000",
        "rows an exporter or reporter subtask reads per database round trip",
    ),
    "LUNA_DEFAULT_CROSSMATCH_THRESHOLD": (
        "0.5",
        "cross-match similarity threshold when a task gives none (candidates at or above it are kept)",
    ),
    "LUNA_CROSS_MATCH_SUBTASK_SIZE": ("20000", "references one cross-match subtask handles"),
    "LUNA_ROC_SUBTASK_SIZE": ("10000", "markup objects one ROC subtask matches with all the others"),
    "LUNA_ROC_CURVE_POINTS": ("1000", "most points of the ROC curve a ROC result lists"),
    "LUNA_LINKER_SUBTASK_SIZE": ("1000", "objects one linker subtask (and one of its transactions) links"),
    "LUNA_GC_SUBTASK_SIZE": ("10000", "objects one garbage-collection subtask deletes"),
    "LUNA_GC_BATCH_SIZE": ("500", "objects deleted per transaction by a garbage-collection subtask"),
    "LUNA_GC_BATCH_PAUSE": ("0", "seconds a garbage-collection subtask waits between batches (throttle)"),
    "LUNA_ESTIMATOR_SUBTASK_SIZE": ("50", "images one estimator subtask processes (one by one)"),
    "LUNA_ESTIMATOR_MAX_IMAGE_SIZE": ("52428800", "bytes; larger source files are refused with error 28085"),
    "LUNA_ESTIMATOR_EXTENSIONS": (
        ".jpg,.jpeg,.png,.bmp,.webp,.tif,.tiff",
        "file name endings (any case) the estimator reads; other files of a source are skipped",
    ),
    "LUNA_ESTIMATOR_LOCAL_ROOTS": (
        "",
        "comma-separated folders that network_disk sources and file:// zip URLs may read (empty: any)",
    ),
    "LUNA_ESTIMATOR_SOURCE_TIMEOUT": ("30", "seconds to connect to (and wait on) a remote image source"),
    "LUNA_FACE_DETECT_MAX_SIDE": ("2048", "longer images are scaled down to this side for face detection"),
    "LUNA_ADDITIONAL_EXTRACT_SUBTASK_SIZE": ("1000", "objects one additional extract subtask processes"),
}


def _env(name: str) -> str:
    return os.environ.get(name, SETTINGS_DOC[name][0])


def _list(value: str, *, lower: bool = False) -> tuple[str, ...]:
    items = (item.strip() for item in value.split(","))
    return tuple(item.lower() if lower else item for item in items if item)


@dataclass(frozen=True)
class Settings:
    """Resolved settings; build with :func:`load`."""

    home: Path
    database_url: str
    object_store_url: str
    airflow_api_url: str
    airflow_username: str
    airflow_password: str = field(repr=False)
    api_host: str
    api_port: int
    public_url: str
    postgres_port: int
    airflow_port: int
    airflow_parallelism: int
    default_descriptor_version: int
    default_clustering_threshold: float
    match_block_size: int
    clustering_subtask_size: int
    max_subtasks: int
    trigger_retries: int
    reconcile_interval: float
    callback_timeout: float
    max_body_size: int
    exporter_subtask_size: int
    exporter_batch_size: int
    default_crossmatch_threshold: float
    cross_match_subtask_size: int
    roc_subtask_size: int
    roc_curve_points: int
    linker_subtask_size: int
    gc_subtask_size: int
    gc_batch_size: int
    gc_batch_pause: float
    estimator_subtask_size: int
    estimator_max_image_size: int
    estimator_extensions: str
    estimator_local_roots: str
    estimator_source_timeout: float
    face_detect_max_side: int
    additional_extract_subtask_size: int

    @property
    def estimator_extension_list(self) -> tuple[str, ...]:
        """Return the file name endings the estimator reads, lower case."""
        return _list(self.estimator_extensions, lower=True)

    @property
    def estimator_local_root_list(self) -> tuple[str, ...]:
        """Return the folders local estimator sources must lie in (none: any)."""
        return _list(self.estimator_local_roots)

    def public_dict(self) -> dict[str, object]:
        """Return the settings with secrets masked, as ``GET /config`` shows them."""
        shown: dict[str, object] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if "password" in item.name and value:
                value = "***"
            elif item.name in ("database_url", "object_store_url", "airflow_api_url"):
                value = mask_url(str(value))
            shown[item.name] = str(value) if isinstance(value, Path) else value
        return shown


_SECRET_QUERY = re.compile(r"(?i)((?:password|secret|token|key)[^=&]*=)[^&]*")


def mask_url(url: str) -> str:
    """Hide the secrets of a URL: the password part and secret-looking query parameters."""
    url = _SECRET_QUERY.sub(r"\1***", url)
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    if "@" not in netloc:
        return url
    credentials, _, host = netloc.rpartition("@")
    user, has_password, _ = credentials.partition(":")
    return f"{scheme}://{user}:***@{host}{slash}{path}" if has_password else url


def embedded_database_url(port: int, database: str = "luna", password: str | None = None) -> str:
    """Return the URL of a database on the embedded PostgreSQL server."""
    from urllib.parse import quote

    credentials = f"postgres:{quote(password, safe='')}" if password else "postgres"
    return f"postgresql+psycopg2://{credentials}@127.0.0.1:{port}/{database}"


def embedded_postgres_password(home: Path) -> str | None:
    """Return the embedded PostgreSQL's password from the stack's secrets, if the stack has made them."""
    import json

    try:
        return json.loads((home / "secrets" / "stack.json").read_text()).get("postgres_password")
    except (OSError, ValueError):
        return None


def load() -> Settings:
    """Read the settings from the environment."""
    home = Path(_env("LUNA_HOME")).expanduser().resolve()
    postgres_port = int(_env("LUNA_POSTGRES_PORT"))
    api_host = _env("LUNA_API_HOST")
    api_port = int(_env("LUNA_API_PORT"))
    return Settings(
        home=home,
        database_url=_env("LUNA_DATABASE_URL")
        or embedded_database_url(postgres_port, password=embedded_postgres_password(home)),
        object_store_url=_env("LUNA_OBJECT_STORE_URL") or (home / "objects").as_uri(),
        airflow_api_url=(
            _env("LUNA_AIRFLOW_API_URL") or f"http://127.0.0.1:{_env('LUNA_AIRFLOW_PORT')}"
        ).rstrip("/"),
        airflow_username=_env("LUNA_AIRFLOW_USERNAME"),
        airflow_password=_env("LUNA_AIRFLOW_PASSWORD"),
        api_host=api_host,
        api_port=api_port,
        public_url=(_env("LUNA_PUBLIC_URL") or f"http://{api_host}:{api_port}").rstrip("/"),
        postgres_port=postgres_port,
        airflow_port=int(_env("LUNA_AIRFLOW_PORT")),
        airflow_parallelism=int(_env("LUNA_AIRFLOW_PARALLELISM")),
        default_descriptor_version=int(_env("LUNA_DEFAULT_DESCRIPTOR_VERSION")),
        default_clustering_threshold=float(_env("LUNA_DEFAULT_CLUSTERING_THRESHOLD")),
        match_block_size=int(_env("LUNA_MATCH_BLOCK_SIZE")),
        clustering_subtask_size=int(_env("LUNA_CLUSTERING_SUBTASK_SIZE")),
        max_subtasks=int(_env("LUNA_MAX_SUBTASKS")),
        trigger_retries=int(_env("LUNA_TRIGGER_RETRIES")),
        reconcile_interval=float(_env("LUNA_RECONCILE_INTERVAL")),
        callback_timeout=float(_env("LUNA_CALLBACK_TIMEOUT")),
        max_body_size=int(_env("LUNA_MAX_BODY_SIZE")),
        exporter_subtask_size=int(_env("LUNA_EXPORTER_SUBTASK_SIZE")),
        exporter_batch_size=int(_env("LUNA_EXPORTER_BATCH_SIZE")),
        default_crossmatch_threshold=float(_env("LUNA_DEFAULT_CROSSMATCH_THRESHOLD")),
        cross_match_subtask_size=int(_env("LUNA_CROSS_MATCH_SUBTASK_SIZE")),
        roc_subtask_size=int(_env("LUNA_ROC_SUBTASK_SIZE")),
        roc_curve_points=int(_env("LUNA_ROC_CURVE_POINTS")),
        linker_subtask_size=int(_env("LUNA_LINKER_SUBTASK_SIZE")),
        gc_subtask_size=int(_env("LUNA_GC_SUBTASK_SIZE")),
        gc_batch_size=int(_env("LUNA_GC_BATCH_SIZE")),
        gc_batch_pause=float(_env("LUNA_GC_BATCH_PAUSE")),
        estimator_subtask_size=max(1, int(_env("LUNA_ESTIMATOR_SUBTASK_SIZE"))),
        estimator_max_image_size=int(_env("LUNA_ESTIMATOR_MAX_IMAGE_SIZE")),
        estimator_extensions=_env("LUNA_ESTIMATOR_EXTENSIONS"),
        estimator_local_roots=_env("LUNA_ESTIMATOR_LOCAL_ROOTS"),
        estimator_source_timeout=float(_env("LUNA_ESTIMATOR_SOURCE_TIMEOUT")),
        face_detect_max_side=max(64, int(_env("LUNA_FACE_DETECT_MAX_SIDE"))),
        additional_extract_subtask_size=max(1, int(_env("LUNA_ADDITIONAL_EXTRACT_SUBTASK_SIZE"))),
    )
