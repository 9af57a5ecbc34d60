-- Event bus payloads too big for a NOTIFY (8,000 bytes): the notification carries the row's id,
-- and rows older than a minute are deleted as new ones arrive.
CREATE TABLE bus_payloads (
    id         BIGSERIAL PRIMARY KEY,
    payload    BYTEA       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
