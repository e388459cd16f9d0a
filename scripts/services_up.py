"""Exit 0 when the PostgreSQL of DATABASE_URL and the Redis of REDIS_URL both answer."""
import os
import sys
from urllib.parse import urlsplit

import psycopg
import redis

db = urlsplit(os.environ["DATABASE_URL"])
try:
    psycopg.connect(host=db.hostname, port=db.port or 5432, user=db.username or "postgres",
                    password=db.password or "", dbname="postgres", connect_timeout=3).close()
    redis.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=3).ping()
except Exception as exc:  # noqa: BLE001 - any failure means "not available"
    print(f"not available: {exc}", file=sys.stderr)
    sys.exit(1)
