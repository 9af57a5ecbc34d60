-- A chat message's place in its room comes from the database: each room keeps a counter that a
-- post increments in the same transaction as it inserts, so positions are 1, 2, 3… without
-- gaps, and every participant (on any backend instance) can put live messages back in that
-- order and tell when one is missing.
CREATE TABLE chat_rooms (
    session_id    TEXT    PRIMARY KEY,
    last_position BIGINT  NOT NULL
);
ALTER TABLE chat_messages ADD COLUMN position BIGINT NOT NULL DEFAULT 0;
UPDATE chat_messages SET position = numbered.position
FROM (SELECT id, row_number() OVER (PARTITION BY session_id ORDER BY id) AS position FROM chat_messages) AS numbered
WHERE numbered.id = chat_messages.id;
INSERT INTO chat_rooms (session_id, last_position) SELECT session_id, MAX(position) FROM chat_messages GROUP BY session_id;
DROP INDEX chat_by_session;
CREATE UNIQUE INDEX chat_by_position ON chat_messages (session_id, position);
