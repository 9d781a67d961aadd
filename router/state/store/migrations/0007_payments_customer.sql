-- A customer's payments, for smart retries: the planner reads a card's and its customer's settled attempts
-- (their payday rhythm) at every retry decision, and without it that read scanned every payment.
CREATE INDEX IF NOT EXISTS payments_customer ON payments (customer, created_us);
