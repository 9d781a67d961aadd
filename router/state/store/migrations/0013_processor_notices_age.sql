-- Retention deletes processor notices by age.
CREATE INDEX processor_notices_age ON processor_notices (created_us);
