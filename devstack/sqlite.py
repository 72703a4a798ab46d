"""SQLite connect arguments for the local Airflow (``[database] sql_alchemy_connect_args``).

Four Airflow processes and their workers share one SQLite file; the driver's default 5 s wait for a
write lock is too short when a scheduler loop, a worker and the API write at once, so they wait
up to 60 s instead of failing a request with "database is locked".
"""

CONNECT_ARGS = {"timeout": 60}
