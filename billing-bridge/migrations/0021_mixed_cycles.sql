-- An order may mix cycles: each item carries its own (a monthly CloudPod with a domain sold
-- yearly, say). The order's `cycle` stays what the checkout asked for by default. The
-- subscription's `cycle` is the shortest of its items': its billing period. Every item's periods
-- count from the same anchor (the first period's start), so a longer cycle's periods end on a
-- period end of the subscription's (cycles are whole months, each a multiple of the shorter ones),
-- and a renewal invoice bills the items whose own period ends when the subscription's does.
ALTER TABLE order_items
    ADD COLUMN cycle text CHECK (cycle IN ('monthly', 'quarterly', 'annual', 'biennial'));

UPDATE order_items i SET cycle = o.cycle FROM orders o WHERE o.id = i.order_id;

ALTER TABLE order_items ALTER COLUMN cycle SET NOT NULL;
