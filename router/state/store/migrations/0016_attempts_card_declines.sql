-- A card's declined authorizations by time: a new payment's first try reads them (Mastercard's decline caps,
-- router.retry.planner.first_try_at). Through attempts_card it walked every attempt of the card in 30 days,
-- approvals included: one card paying thousands of times (a business card, a load test's test card) made each
-- create read them all. Only declines are indexed here, so the read is bounded by what the caps allow.
CREATE INDEX attempts_card_declines ON attempts (card_fingerprint, created_us)
    WHERE outcome IN ('soft_decline', 'hard_decline', 'authentication_required');
