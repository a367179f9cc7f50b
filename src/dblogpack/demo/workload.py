"""The demo's background workload: an imaginary shop's queries against the demo cluster, so its
log keeps getting slow statements, errors (with DETAIL and HINT), warnings and a rare FATAL.
"""

from __future__ import annotations

import logging
import random
import threading

import psycopg

log = logging.getLogger("dblogpack.demo")

SHOP_DB = "shop"
APPLICATION = "shop-api"

_SCHEMA = (
    b"CREATE TABLE IF NOT EXISTS customers (id serial PRIMARY KEY, email text UNIQUE NOT NULL)",
    b"CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, customer_id int NOT NULL"
    b" REFERENCES customers, total numeric(10,2) NOT NULL CHECK (total >= 0),"
    b" status text NOT NULL DEFAULT 'open', created_at timestamptz NOT NULL DEFAULT now())",
    b"INSERT INTO customers (email) SELECT 'customer' || g || '@example.com'"
    b" FROM generate_series(1, 200) AS g ON CONFLICT DO NOTHING",
)

# Each a statement the server logs: slow ones sleep past log_min_duration_statement (200 ms).
_SLOW = (
    "SELECT c.email, count(o.id), sum(o.total), pg_sleep({sleep})"
    " FROM customers c LEFT JOIN orders o ON o.customer_id = c.id"
    " WHERE c.id = {small} GROUP BY c.email",
    "WITH recent AS (SELECT pg_sleep({sleep}))\nSELECT status, count(*)\n  FROM orders, recent"
    "\n WHERE created_at > now() - interval '1 hour'\n GROUP BY status",
    # The pause is a CTE joined once: a pg_sleep in the WHERE would sleep once per row.
    "WITH pause AS (SELECT pg_sleep({sleep})) UPDATE orders SET status = 'shipped' FROM pause"
    " WHERE id IN (SELECT id FROM orders WHERE status = 'open' ORDER BY id LIMIT 5)",
)
_ERRORS = (
    # unique_violation: DETAIL names the key
    "INSERT INTO customers (email) VALUES ('customer{small}@example.com')",
    # foreign_key_violation: DETAIL names the missing customer
    "INSERT INTO orders (customer_id, total) VALUES ({n} + 100000, 10)",
    # check_violation: DETAIL shows the failing row
    "INSERT INTO orders (customer_id, total) VALUES ({small}, -1)",
    # division_by_zero
    "SELECT sum(total) / count(*) FILTER (WHERE status = 'lost') FROM orders",
    # a raised error with DETAIL and HINT, as application functions do
    "DO $$ BEGIN RAISE EXCEPTION 'payment {n} declined' USING DETAIL = 'card expired',"
    " HINT = 'ask the customer for another card', ERRCODE = 'P0001'; END $$",
    # undefined_table
    "SELECT * FROM order_items WHERE order_id = {n}",
)
_WARNINGS = (
    "DO $$ BEGIN RAISE WARNING 'order {n} total exceeds the credit limit'"
    " USING HINT = 'review the order by hand'; END $$",
)


class ShopWorkload:
    """A thread that runs one round of statements every `interval_s` until stopped."""

    def __init__(self, superuser_dsn: str, shop_dsn: str, interval_s: float = 3.0) -> None:
        self._superuser_dsn = superuser_dsn
        self._shop_dsn = shop_dsn
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._rng = random.Random()
        self._thread = threading.Thread(target=self._run, name="demo-pg-workload", daemon=True)
        self.rounds = 0

    def prepare(self) -> None:
        """Create the shop database and its tables (once; a second start finds them)."""
        with psycopg.connect(self._superuser_dsn, autocommit=True, connect_timeout=10) as conn:
            found = conn.execute(b"SELECT 1 FROM pg_database WHERE datname = %s", [SHOP_DB])
            if found.fetchone() is None:
                conn.execute(f"CREATE DATABASE {SHOP_DB}".encode())
        with psycopg.connect(self._shop_dsn, autocommit=True, connect_timeout=10) as conn:
            for statement in _SCHEMA:
                conn.execute(statement)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_round()
            except psycopg.OperationalError as exc:
                # The server is going away (Ctrl-C stops it too); say so and try again later.
                log.warning("demo workload: the demo PostgreSQL does not answer: %s", exc)
            self._stop.wait(self._interval_s)

    def run_round(self) -> None:
        """Two slow statements, two errors, sometimes a warning, rarely a FATAL connection."""
        with psycopg.connect(self._shop_dsn, autocommit=True, connect_timeout=10,
                             application_name=APPLICATION) as conn:
            conn.execute(b"INSERT INTO orders (customer_id, total) VALUES (%s, %s)",
                         [self._rng.randint(1, 200), self._rng.randint(5, 500)])
            for template in self._rng.sample(_SLOW, 2):
                self._execute(conn, template.format(**self._values(slow=True)))
            for template in self._rng.sample(_ERRORS, 2):
                self._execute(conn, template.format(**self._values()))
            if self._rng.random() < 0.5:
                self._execute(conn, self._rng.choice(_WARNINGS).format(**self._values()))
        if self._rng.random() < 0.1:
            self._failed_login()
        self.rounds += 1

    def _values(self, *, slow: bool = False) -> dict[str, object]:
        sleep = round(self._rng.uniform(0.21, 0.6), 2) if slow else 0
        return {"n": self._rng.randint(1, 99999), "small": self._rng.randint(1, 200),
                "sleep": sleep}

    @staticmethod
    def _execute(conn: psycopg.Connection[tuple[object, ...]], statement: str) -> None:
        try:
            conn.execute(statement.encode())
        except psycopg.errors.DatabaseError as exc:
            # The point of these statements is the server's log entry, not their result.
            if isinstance(exc, psycopg.OperationalError):
                raise
            log.debug("demo workload statement failed as intended: %s", exc.sqlstate)

    def _failed_login(self) -> None:
        # FATAL: a client asking for a database that does not exist, as misconfigured apps do.
        missing = self._shop_dsn.rsplit("/", 1)[0] + "/shop_staging"
        try:
            psycopg.connect(missing, connect_timeout=10).close()
        except psycopg.OperationalError as exc:
            log.debug("demo workload login failed as intended: %s", exc.sqlstate)
