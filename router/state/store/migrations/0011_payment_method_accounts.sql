-- A stored payment method belongs to the account whose key made it: only that account reads, updates, lists,
-- detaches or charges it. Rows written before this are the default account's.
ALTER TABLE payment_methods ADD COLUMN account TEXT NOT NULL DEFAULT 'default';
CREATE INDEX payment_methods_account_list ON payment_methods (account, livemode, customer, created_us, id);
