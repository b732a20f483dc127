"""The ``luna-tasks`` command: the embedded stack (with a demo), the API alone, migrations, imports."""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _folder(env_name: str, default: Path) -> Path:
    import os

    return Path(os.environ.get(env_name) or default).resolve()


def cmd_standalone(args: argparse.Namespace) -> int:
    """Start PostgreSQL, Airflow and the API on this machine and wait for Ctrl-C."""
    from luna_provider import standalone
    from luna_provider.settings import load

    on_ready = None
    if args.demo:
        from luna_provider.demo import run_demo_in_background

        on_ready = run_demo_in_background
    return standalone.run(
        load(),
        dags_folder=_folder("LUNA_DAGS_FOLDER", REPO / "dags"),
        plugins_folder=_folder("LUNA_PLUGINS_FOLDER", REPO / "plugins"),
        ready_file=Path(args.ready_file) if args.ready_file else None,
        on_ready=on_ready,
    )


def cmd_api(args: argparse.Namespace) -> int:
    """Serve only the API (against external PostgreSQL and Airflow)."""
    import uvicorn

    from luna_provider.settings import load

    settings = load()
    uvicorn.run(
        "luna_provider.api.app:create_asgi_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
    )
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Apply the service database migrations."""
    from luna_provider.settings import load
    from luna_provider.store.migrate import upgrade

    upgrade(load().database_url)
    print("service database is up to date")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Import faces with descriptors from a JSON Lines file."""
    from sqlalchemy.exc import OperationalError

    from luna_provider.compute.descriptors import UnknownDescriptorVersion, get_descriptor_version
    from luna_provider.importer import ImportLineError, import_faces, read_lines
    from luna_provider.settings import load, mask_url
    from luna_provider.store.db import get_engine

    settings = load()
    try:
        account_id = uuid.UUID(args.account_id)
        version = get_descriptor_version(args.descriptor_version or settings.default_descriptor_version)
    except ValueError:
        print("error: --account-id must be a uuid", file=sys.stderr)
        return 2
    except UnknownDescriptorVersion as error:
        print(f"error: unknown descriptor version {error}", file=sys.stderr)
        return 2
    try:
        report = import_faces(get_engine(settings.database_url), account_id, read_lines(args.file), version)
    except (OSError, ImportLineError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OperationalError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        print(
            f"error: cannot reach the service database ({mask_url(settings.database_url)}): {reason}\n"
            "Is the stack running (luna-tasks standalone), or LUNA_DATABASE_URL set?",
            file=sys.stderr,
        )
        return 1
    for problem in report.rejected:
        print(f"rejected {problem}", file=sys.stderr)
    print(
        f"imported {report.faces} faces, created {report.lists_created} lists, "
        f"rejected {len(report.rejected)} lines"
    )
    return 1 if report.rejected else 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``luna-tasks``."""
    parser = argparse.ArgumentParser(prog="luna-tasks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    standalone = commands.add_parser("standalone", help=cmd_standalone.__doc__)
    standalone.add_argument("--ready-file", help="write the stack's addresses here as JSON once it is ready")
    standalone.add_argument(
        "--demo",
        action="store_true",
        help="once ready, import sample faces, cluster them and print the clusters",
    )
    standalone.set_defaults(func=cmd_standalone)

    commands.add_parser("api", help=cmd_api.__doc__).set_defaults(func=cmd_api)

    db = commands.add_parser("db", help="service database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help=cmd_db_upgrade.__doc__).set_defaults(func=cmd_db_upgrade)

    importer = commands.add_parser("import", help=cmd_import.__doc__)
    importer.add_argument("file", help="JSON Lines file, one face per line")
    importer.add_argument("--account-id", required=True, help="account the faces belong to")
    importer.add_argument("--descriptor-version", type=int, help="descriptor version of the file")
    importer.set_defaults(func=cmd_import)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``luna-tasks``."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
