-- Currencies: every price, order, invoice and payment names its currency (lower-case ISO 4217
-- code), catalog amounts count the currency's minor unit (yen for jpy, fils for kwd, cents for
-- usd), and money in one currency is never counted toward an invoice in another.

COMMENT ON COLUMN product_prices.amount_cents IS 'the price in the currency''s minor unit (ISO 4217)';
COMMENT ON COLUMN order_items.unit_cents IS 'the unit price in the order currency''s minor unit (ISO 4217)';

ALTER TABLE orders ADD CONSTRAINT orders_currency_code CHECK (currency ~ '^[a-z]{3}$');
ALTER TABLE invoices ADD CONSTRAINT invoices_currency_code CHECK (currency ~ '^[a-z]{3}$');
ALTER TABLE payments ADD CONSTRAINT payments_currency_code CHECK (currency ~ '^[a-z]{3}$');

-- A payment pays only an invoice in its own currency, whoever writes it.
CREATE FUNCTION payments_currency_of_invoice() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    invoice_currency text;
BEGIN
    IF NEW.invoice_id IS NOT NULL THEN
        SELECT currency INTO invoice_currency FROM invoices WHERE id = NEW.invoice_id;
        IF invoice_currency IS DISTINCT FROM NEW.currency THEN
            RAISE EXCEPTION 'a payment in % cannot pay invoice % in %', NEW.currency, NEW.invoice_id, invoice_currency;
        END IF;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER payments_currency_of_invoice BEFORE INSERT OR UPDATE OF invoice_id, currency ON payments
    FOR EACH ROW EXECUTE FUNCTION payments_currency_of_invoice();
