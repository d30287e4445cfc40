"""The store's schema as Alembic migrations (`versions/`), run by `Database.migrate()`.

A migration is a file in `versions/` whose `down_revision` names the one before; the newest is
the head. The version table is `ragtune_schema_version` (not Alembic's default name, so a database
shared with another Alembic-managed application keeps the two apart). Migrations are written with
`op` and run inside the caller's transaction, on SQLite and Postgres alike. Add one by copying the
last file (`script.py.mako` is the template of Alembic's `revision` command) and test it in
tests/serve/test_store_migrations.py, an upgrade from the schema before it included.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

HERE = Path(__file__).resolve().parent
VERSION_TABLE = "ragtune_schema_version"


def config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Run the migrations up to `revision` on `connection` (in its transaction)."""
    command.upgrade(config(connection), revision)


def current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def head() -> str:
    head = ScriptDirectory.from_config(config()).get_current_head()
    assert head is not None
    return head
