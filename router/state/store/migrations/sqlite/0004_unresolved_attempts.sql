-- Timed-out attempts whose answer is still unknown: the sweeper asks their processors until it knows.
CREATE INDEX attempts_unresolved ON attempts (created_us) WHERE state = 'unresolved';
