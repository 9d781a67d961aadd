-- Every payment list reads one account's payments (payments_account_list); this index, from before accounts, was
-- read by no query and cost every create an index insert.
DROP INDEX IF EXISTS payments_list;
