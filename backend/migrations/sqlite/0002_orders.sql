-- Orders of users. A user with orders cannot be deleted (the foreign key refuses it).
CREATE TABLE orders (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT    NOT NULL UNIQUE,
    user_id    TEXT    NOT NULL REFERENCES users (id),
    items      TEXT    NOT NULL,
    total      REAL    NOT NULL,
    status     INTEGER NOT NULL,
    created_at INTEGER NOT NULL, -- Unix nanoseconds
    updated_at INTEGER NOT NULL  -- Unix nanoseconds
);
CREATE INDEX orders_by_user ON orders (user_id, seq);

-- Stored uploads; the bytes live in files named by id under the data directory.
CREATE TABLE uploads (
    id         TEXT    PRIMARY KEY,
    upload_id  TEXT    NOT NULL,
    size       INTEGER NOT NULL,
    sha256     TEXT    NOT NULL,
    created_at INTEGER NOT NULL -- Unix nanoseconds
);

-- Chat messages, in order per room.
CREATE TABLE chat_messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    message    TEXT    NOT NULL,
    timestamp  INTEGER NOT NULL -- Unix milliseconds
);
CREATE INDEX chat_by_session ON chat_messages (session_id, id);
