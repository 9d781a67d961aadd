-- Migration 16 (attempts_card_declines, a partial index of declined authorizations) was withdrawn before release:
-- it made every attempts write dearer for one read a bounded scan of attempts_card does well enough. A database
-- that ran it drops the index here; number 16 stays unused.
DROP INDEX IF EXISTS attempts_card_declines;
