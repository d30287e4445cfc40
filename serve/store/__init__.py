"""The API's shared state (conversations, feedback, jobs, rate-limit counters) in one SQL database.

SQLite under the data dir for one machine, Postgres (selected by `store.url`) for several API
replicas. Each concern owns its tables in its own module and creates them with `Database.ensure`.
"""

from serve.store.db import Database

__all__ = ["Database"]
