"""
Proof under faults (issue 5): the dispatcher keeps the database true while
RabbitMQ, PostgreSQL, the dispatcher and the watcher are restarted or
killed under load.
"""
