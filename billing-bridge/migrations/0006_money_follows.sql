-- A subscription is suspended while a payment for it is disputed (a chargeback).
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_suspension_reason_check;
ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_suspension_reason_check
    CHECK (suspension_reason IN ('Overdue', 'Abuse', 'Manual', 'Dispute'));
