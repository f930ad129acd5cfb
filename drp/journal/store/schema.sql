-- drp's shared journal store (PostgreSQL 12 or later). `drp store init --store URL` applies
-- this file; it is idempotent (every statement may run again). It is also the whole setup
-- for a DBA who prefers psql: psql "$DRP_STORE" -f schema.sql
--
-- The local, fsynced journal of each run stays the source of truth: these tables are a
-- replica that may lag. A record is stored as the exact JSON line of the local journal
-- (without its newline), so the hash chain can be recomputed from the store alone.

CREATE SCHEMA IF NOT EXISTS drp;

-- One row per run: what `drp log list --store` needs to find it, kept up to date by
-- every push of its records.
CREATE TABLE IF NOT EXISTS drp.runs (
    run_id   text PRIMARY KEY,
    runbook  text NOT NULL DEFAULT '',
    operator text NOT NULL DEFAULT '',       -- who started it
    started  text NOT NULL DEFAULT '',       -- the first record's ts (sorts as text)
    status   text NOT NULL DEFAULT 'running',-- the outcome of run.finished, else running
    last_seq integer NOT NULL DEFAULT 0,
    updated  timestamptz NOT NULL DEFAULT now()
);

-- The records, idempotent by (run, seq): a push inserts with ON CONFLICT DO NOTHING, and
-- a record already stored with another hash is reported as "store diverges".
CREATE TABLE IF NOT EXISTS drp.records (
    run_id text NOT NULL REFERENCES drp.runs (run_id),
    seq    integer NOT NULL CHECK (seq >= 1),
    line   text NOT NULL,                    -- the exact JSON line as stored locally
    hash   text NOT NULL,                    -- the record's "hash"
    prev   text NOT NULL,                    -- the record's "prev" (the chain)
    stored timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, seq)
);

-- Who drives a run now: one lease per run, taken by run and resume, renewed while the
-- session lives, released (expires set to now) when it ends. A lease whose expiry passed
-- may be taken by anyone; the row keeps the last holder, for the hand-over record.
CREATE TABLE IF NOT EXISTS drp.leases (
    run_id  text PRIMARY KEY,
    holder  text NOT NULL,                   -- the operator
    machine text NOT NULL,                   -- the host name of the machine
    pid     integer NOT NULL,
    token   text NOT NULL,                   -- this session's secret-free random id
    taken   timestamptz NOT NULL,
    expires timestamptz NOT NULL
);

-- Approvals of gates by someone else (`drp approve`): each the exact statement the approver
-- signed and its SSH signature (ssh-keygen -Y sign, namespace drp-approval). The waiting run
-- checks every signature against the team's allowed_signers file: a row edited here no
-- longer verifies, and is reported, never counted.
CREATE TABLE IF NOT EXISTS drp.approvals (
    id        bigserial PRIMARY KEY,
    run_id    text NOT NULL,
    step      text NOT NULL,
    approver  text NOT NULL,                 -- the principal the statement names
    statement text NOT NULL,
    signature text NOT NULL,
    stored    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS approvals_run_step ON drp.approvals (run_id, step);
