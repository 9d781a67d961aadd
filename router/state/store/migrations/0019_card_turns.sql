-- A card's turn across processes (router.payments.turns): one lease row per card while an attempt of it is between
-- reading the card's network caps and writing itself down. Leases live seconds and a lost one only lapses, so
-- PostgreSQL keeps them out of its write-ahead log ({unlogged}: a crash empties the table, which frees them all).
CREATE {unlogged} TABLE IF NOT EXISTS card_turns (
    card TEXT PRIMARY KEY,
    claim TEXT NOT NULL,
    until_us BIGINT NOT NULL
);
