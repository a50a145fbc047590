-- The messages table again, with its author check written as comparisons: SQLite codes
-- `IN` over more than two constants as a temporary b-tree built for every inserted row,
-- which cost about 1.8 µs of each message's insert (docs/BENCHMARKS.md). Same columns,
-- keys, index and trigger; nothing references messages by foreign key.
CREATE TABLE messages_new (
    conversation_id  INTEGER NOT NULL REFERENCES conversations(id),
    seq              INTEGER NOT NULL,
    workspace_id     INTEGER NOT NULL REFERENCES workspaces(id),
    author_kind      TEXT    NOT NULL CHECK (author_kind = 'customer' OR author_kind = 'agent'
                                             OR author_kind = 'bot' OR author_kind = 'system'),
    -- contacts.id for customers, agents.id for agents, NULL for bot and system.
    author_id        INTEGER,
    client_msg_id    TEXT,
    body             TEXT    NOT NULL,
    format           TEXT    NOT NULL DEFAULT 'text',
    created_at       INTEGER NOT NULL,
    internal         INTEGER NOT NULL DEFAULT 0,
    attachments      TEXT,
    channel_id       INTEGER REFERENCES channels(id),
    source           TEXT,
    PRIMARY KEY (conversation_id, seq)
) WITHOUT ROWID;

INSERT INTO messages_new (conversation_id, seq, workspace_id, author_kind, author_id, client_msg_id, body, format,
                          created_at, internal, attachments, channel_id, source)
SELECT conversation_id, seq, workspace_id, author_kind, author_id, client_msg_id, body, format,
       created_at, internal, attachments, channel_id, source
FROM messages;

DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;

-- A client message id is unique per author: a re-sent message is stored once.
CREATE UNIQUE INDEX messages_client_msg_id
    ON messages(workspace_id, author_kind, author_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;

-- As in 0009: a reply where the customer last wrote through an app or social channel is
-- queued for that channel in the reply's own transaction.
CREATE TRIGGER messages_to_channel_outbox AFTER INSERT ON messages
WHEN NEW.author_kind <> 'customer' AND NEW.author_kind <> 'system' AND NEW.internal = 0
BEGIN
    INSERT INTO channel_outbox (workspace_id, channel_id, conversation_id, seq, state, next_attempt_at, created_at)
    SELECT NEW.workspace_id, ch.id, NEW.conversation_id, NEW.seq,
           CASE WHEN ch.webhook_url IS NULL THEN 'stored' ELSE 'pending' END,
           NEW.created_at, NEW.created_at
    FROM channels ch
    WHERE ch.id = (SELECT m.channel_id FROM messages m
                   WHERE m.conversation_id = NEW.conversation_id AND m.author_kind = 'customer'
                   ORDER BY m.seq DESC LIMIT 1)
      AND ch.kind <> 'web';
END;
