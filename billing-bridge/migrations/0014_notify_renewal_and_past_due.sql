-- Two more notifications: a renewal invoice was issued (what is due, and when), and a subscription
-- went past due (its renewal is unpaid after the due date; suspension follows after the grace days).
ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check
    CHECK (kind IN ('receipt', 'payment_failed', 'suspended', 'resumed', 'cancelled', 'provisioning_failed',
                    'invoice_issued', 'past_due'));
