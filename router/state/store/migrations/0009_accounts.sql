-- Accounts (PAYROUTE_API_KEYS groups keys by account): each payment and event belongs to the account whose key
-- made it, and lists read one account's rows; rows written before accounts existed are the default account's.
ALTER TABLE payments ADD COLUMN account TEXT NOT NULL DEFAULT 'default';
ALTER TABLE events ADD COLUMN account TEXT NOT NULL DEFAULT 'default';
CREATE INDEX payments_account_list ON payments (account, livemode, created_us, id);
CREATE INDEX events_account_list ON events (account, livemode, seq);
-- This installation's random secrets (one row each, made on first use): the one that keys payment ids derived from
-- Idempotency-Keys, so the same key names another id on every install.
CREATE TABLE install_secrets (name TEXT PRIMARY KEY, secret TEXT NOT NULL);
