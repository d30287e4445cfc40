"""Alembic's entry point: migrate the connection `Database.migrate()` hands over, in its transaction."""

from alembic import context

from serve.store.migrations import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
