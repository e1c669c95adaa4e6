-- A customer's saved payment method (for off-session renewal charges) is kept current from Stripe's
-- events, which arrive in any order: the time of the event that set it, so an older event never
-- puts back a method the customer has since replaced.
ALTER TABLE customers ADD COLUMN payment_method_at timestamptz;
