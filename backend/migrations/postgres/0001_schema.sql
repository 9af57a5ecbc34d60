-- The same tables as the SQLite store, in PostgreSQL's types. Sequences give the order of
-- users, of each user's orders and of each chat room, shared by every backend instance.
CREATE TABLE users (
    seq        BIGSERIAL PRIMARY KEY,
    id         TEXT    NOT NULL UNIQUE,
    name       TEXT    NOT NULL,
    email      TEXT    NOT NULL,
    age        INTEGER NOT NULL,
    active     BOOLEAN NOT NULL,
    roles      TEXT    NOT NULL DEFAULT '[]',
    metadata   TEXT    NOT NULL DEFAULT '{}',
    created_at BIGINT  NOT NULL, -- Unix seconds
    timezone   TEXT    NOT NULL,
    status     INTEGER NOT NULL
);
-- Emails are unique ignoring case, as in SQLite's COLLATE NOCASE.
CREATE UNIQUE INDEX users_email_ci ON users (lower(email));

-- A user with orders cannot be deleted (the foreign key refuses it).
CREATE TABLE orders (
    seq        BIGSERIAL PRIMARY KEY,
    id         TEXT    NOT NULL UNIQUE,
    user_id    TEXT    NOT NULL REFERENCES users (id),
    items      TEXT    NOT NULL, -- the store's own JSON form of the items
    total      DOUBLE PRECISION NOT NULL,
    status     INTEGER NOT NULL,
    created_at BIGINT  NOT NULL, -- Unix nanoseconds
    updated_at BIGINT  NOT NULL  -- Unix nanoseconds
);
CREATE INDEX orders_by_user ON orders (user_id, seq);

CREATE TABLE uploads (
    id         TEXT    PRIMARY KEY,
    upload_id  TEXT    NOT NULL,
    size       BIGINT  NOT NULL,
    sha256     TEXT    NOT NULL,
    created_at BIGINT  NOT NULL -- Unix nanoseconds
);

CREATE TABLE chat_messages (
    id         BIGSERIAL PRIMARY KEY,
    session_id TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    message    TEXT    NOT NULL,
    timestamp  BIGINT  NOT NULL -- Unix milliseconds
);
CREATE INDEX chat_by_session ON chat_messages (session_id, id);
