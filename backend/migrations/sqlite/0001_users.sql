-- Users, in creation order (seq) with a public UUID id.
CREATE TABLE users (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT    NOT NULL UNIQUE,
    name       TEXT    NOT NULL,
    email      TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    age        INTEGER NOT NULL,
    active     INTEGER NOT NULL,
    roles      TEXT    NOT NULL DEFAULT '[]',
    metadata   TEXT    NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    timezone   TEXT    NOT NULL,
    status     INTEGER NOT NULL
);
