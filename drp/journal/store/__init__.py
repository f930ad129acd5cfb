"""The shared journal store: a PostgreSQL replica of the team's journals (psycopg 3).

The local, fsynced journal stays the source of truth; the store is a replica that
may lag, fed by the same records the local writer appends:

- :mod:`~drp.journal.store.config`: where the store is (``--store``, ``$DRP_STORE``,
  the config file's ``store:``), and its URL with the password masked
- ``schema.sql``: the tables (``drp store init`` applies it)
- :mod:`~drp.journal.store.db`: connecting, pushing records idempotently, reading back
- :mod:`~drp.journal.store.sync`: catching the store up, fetching a journal from it
- :mod:`~drp.journal.store.lease`: one session drives a run at a time (hand-over)
- :mod:`~drp.journal.store.replicator`: the background thread of a session

psycopg is imported only when a store is used (``pip install 'drp[store]'``).
"""
