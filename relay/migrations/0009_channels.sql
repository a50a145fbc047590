-- Channels: where customers come from besides the workspace's built-in widget key.
--   web:    another widget key (its own default group and priority);
--   app:    the HTTP API for a shop's backend, apps and mini-programs;
--   social: a platform's webhooks, mapped into messages by `mapping`.
CREATE TABLE channels (
    id              INTEGER PRIMARY KEY,
    workspace_id    INTEGER NOT NULL REFERENCES workspaces(id),
    kind            TEXT    NOT NULL CHECK (kind IN ('web', 'app', 'social')),
    name            TEXT    NOT NULL,
    -- web: the public widget key of this channel.
    widget_key      TEXT    UNIQUE,
    -- app and social: the shared secret (API bearer secret; HMAC key of inbound and
    -- outbound signatures). Kept as is, because signing needs the key itself.
    secret          TEXT,
    -- Where replies are pushed (app, social); NULL: fetched with GET .../messages.
    webhook_url     TEXT,
    group_id        INTEGER REFERENCES groups(id),
    -- Queue priority of new conversations; NULL: the routing's default for the kind.
    priority        INTEGER,
    -- social: how to read the platform's JSON (field paths), as JSON.
    mapping         TEXT,
    created_at      INTEGER NOT NULL,
    disabled_at     INTEGER,
    UNIQUE (workspace_id, name)
);

-- Which channel each conversation was opened through and each message came in by
-- (NULL: the workspace's built-in widget key, or an agent's or the bot's message).
ALTER TABLE conversations ADD COLUMN channel_id INTEGER REFERENCES channels(id);
ALTER TABLE messages ADD COLUMN channel_id INTEGER REFERENCES channels(id);
-- Social messages: comment, dm or live (what the platform called it).
ALTER TABLE messages ADD COLUMN source TEXT;

-- Each channel's outbound feed: every reply to a customer who last wrote through an app or
-- social channel. Pushed to the channel's webhook (state pending → delivered or dead) or,
-- without one, kept for GET .../messages?after=ID (state stored).
CREATE TABLE channel_outbox (
    id               INTEGER PRIMARY KEY,
    workspace_id     INTEGER NOT NULL REFERENCES workspaces(id),
    channel_id       INTEGER NOT NULL REFERENCES channels(id),
    conversation_id  INTEGER NOT NULL REFERENCES conversations(id),
    seq              INTEGER NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'dead', 'stored')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    delivered_at     INTEGER
);
CREATE INDEX channel_outbox_due ON channel_outbox(next_attempt_at) WHERE state = 'pending';
CREATE INDEX channel_outbox_feed ON channel_outbox(channel_id, id);
CREATE INDEX channel_outbox_conversation ON channel_outbox(conversation_id, id) WHERE state = 'pending';

-- The outbox row is written by the database in the same transaction as the reply, so a
-- reply that is durable is also queued for its channel, and a crash loses neither.
-- The channel is the one the customer's latest message came through.
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

-- Signatures of inbound webhooks already accepted, so a replay inside the timestamp window
-- is refused; older ones are pruned (the timestamp check refuses those).
CREATE TABLE hook_receipts (
    channel_id   INTEGER NOT NULL REFERENCES channels(id),
    signature    TEXT    NOT NULL,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (channel_id, signature)
) WITHOUT ROWID;

-- One contact across channels: the shop signs its own customer id for the widget with this
-- secret; a merged contact points at the one it became.
ALTER TABLE workspaces ADD COLUMN identity_secret TEXT;
UPDATE workspaces SET identity_secret = lower(hex(randomblob(32)));
ALTER TABLE contacts ADD COLUMN merged_into INTEGER REFERENCES contacts(id);
