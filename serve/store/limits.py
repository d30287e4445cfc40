"""Rate-limit state in the shared store, so every API replica counts against the same limits.

Four tables: request counts per bucket and fixed window, answer slots held (each with an
expiry, so a replica that dies mid-answer cannot hold its slots forever), tokens spent per
bucket and UTC day, and tokens reserved by answers in flight (reserved before an answer starts,
settled to what it spent when it ends, expiring like slots). A bucket names who is counted:
`key:<name>` or `addr:<address>`.

The tables are made by the store's migrations (serve/store/migrations; token_reservations by
0003): times DOUBLE PRECISION
and counts BIGINT (Postgres' REAL is 4 bytes, too coarse for unix seconds, and its INTEGER too
small for window numbers of short windows).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from serve.store.db import Database

DAY_S = 86400


class LimitStore:
    def __init__(self, db: Database):
        self.db = db  # each method makes sure of the schema first: a store down at start is not a failed start

    def count(self, buckets: Sequence[tuple[str, int]], window_s: float, now: float) -> tuple[float, list[str]]:
        """Count one request against each (bucket, limit) in the current window.

        Returns the buckets now over their limit and the seconds until the window ends. A refused
        request counts too: a client that keeps hammering stays refused until the window ends.
        """
        self.db.migrate()
        win = int(now // window_s)
        over: list[str] = []
        with self.db.transaction() as tx:
            for bucket, limit in buckets:
                rows = tx.execute(
                    "INSERT INTO rate_windows (bucket, win, hits) VALUES (?, ?, 1) "
                    "ON CONFLICT (bucket, win) DO UPDATE SET hits = rate_windows.hits + 1 RETURNING hits",
                    (bucket, win),
                )
                hits = rows[0][0]
                if hits == 1:  # the first request of a window clears the bucket's old ones
                    tx.execute("DELETE FROM rate_windows WHERE bucket = ? AND win < ?", (bucket, win))
                if hits > limit:
                    over.append(bucket)
        return (win + 1) * window_s - now, over

    def acquire_slot(self, bucket: str, limit: int, ttl_s: float, now: float) -> str | None:
        """Hold one of `limit` answer slots of `bucket` for at most `ttl_s`; None when all are taken."""
        self.db.migrate()
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO answer_slot_locks (bucket, touched) VALUES (?, ?) "
                "ON CONFLICT (bucket) DO UPDATE SET touched = excluded.touched",
                (bucket, now),
            )
            tx.execute("DELETE FROM answer_slots WHERE bucket = ? AND expires < ?", (bucket, now))
            held = tx.execute("SELECT count(*) FROM answer_slots WHERE bucket = ?", (bucket,))[0][0]
            if held >= limit:
                return None
            slot_id = uuid.uuid4().hex
            tx.execute("INSERT INTO answer_slots (slot_id, bucket, expires) VALUES (?, ?, ?)", (slot_id, bucket, now + ttl_s))
            return slot_id

    def slots_held(self, bucket: str, now: float) -> int:
        self.db.migrate()
        return self.db.execute("SELECT count(*) FROM answer_slots WHERE bucket = ? AND expires >= ?", (bucket, now))[0][0]

    def reserve_tokens(self, bucket: str, budget: int, tokens: int, ttl_s: float, now: float) -> str | None:
        """Reserve `tokens` of `bucket`'s daily budget for an answer about to start; None when what is
        spent and reserved already reaches the budget. Serialised per bucket like slot acquisition,
        so concurrent answers (on any replica) overshoot the budget by one reservation at most."""
        self.db.migrate()
        with self.db.transaction() as tx:
            lock = f"budget:{bucket}"
            tx.execute(
                "INSERT INTO answer_slot_locks (bucket, touched) VALUES (?, ?) "
                "ON CONFLICT (bucket) DO UPDATE SET touched = excluded.touched",
                (lock, now),
            )
            tx.execute("DELETE FROM token_reservations WHERE bucket = ? AND expires < ?", (bucket, now))
            spent = tx.execute("SELECT tokens FROM token_usage WHERE bucket = ? AND day = ?", (bucket, int(now // DAY_S)))
            reserved = tx.execute("SELECT coalesce(sum(tokens), 0) FROM token_reservations WHERE bucket = ?", (bucket,))
            if (int(spent[0][0]) if spent else 0) + int(reserved[0][0]) >= budget:
                return None
            reservation_id = uuid.uuid4().hex
            tx.execute(
                "INSERT INTO token_reservations (reservation_id, bucket, tokens, expires) VALUES (?, ?, ?, ?)",
                (reservation_id, bucket, tokens, now + ttl_s),
            )
            return reservation_id

    def tokens_reserved(self, bucket: str, now: float) -> int:
        self.db.migrate()
        rows = self.db.execute(
            "SELECT coalesce(sum(tokens), 0) FROM token_reservations WHERE bucket = ? AND expires >= ?", (bucket, now)
        )
        return int(rows[0][0])

    def finish_answer(
        self, slot_id: str | None, bucket: str | None, tokens: int, now: float, reservation_id: str | None = None
    ) -> None:
        """Free the answer's slot and reservation and add the tokens it spent to the bucket's day, in one transaction."""
        self.db.migrate()
        with self.db.transaction() as tx:
            if slot_id is not None:
                tx.execute("DELETE FROM answer_slots WHERE slot_id = ?", (slot_id,))
            if reservation_id is not None:
                tx.execute("DELETE FROM token_reservations WHERE reservation_id = ?", (reservation_id,))
            if bucket is not None and tokens > 0:
                tx.execute(
                    "INSERT INTO token_usage (bucket, day, tokens) VALUES (?, ?, ?) "
                    "ON CONFLICT (bucket, day) DO UPDATE SET tokens = token_usage.tokens + excluded.tokens",
                    (bucket, int(now // DAY_S), tokens),
                )

    def tokens_today(self, bucket: str, now: float) -> int:
        self.db.migrate()
        rows = self.db.execute("SELECT tokens FROM token_usage WHERE bucket = ? AND day = ?", (bucket, int(now // DAY_S)))
        return int(rows[0][0]) if rows else 0
