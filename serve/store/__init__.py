"""The API's shared state (conversations, feedback, jobs, rate-limit counters) in one SQL database.

SQLite under the data dir for one machine, Postgres (selected by `store.url`) for several API
replicas, through SQLAlchemy's engine and pool (db.py). The tables are Alembic migrations
(migrations/), run at start and by `ragtune db upgrade`; each concern's queries live in its own
module (conversations.py, jobs.py, limits.py).
"""

from serve.store.db import Database

__all__ = ["Database"]
