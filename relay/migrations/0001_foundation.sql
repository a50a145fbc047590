-- The foundation schema. Every row belongs to a workspace (tenant). Times are Unix
-- milliseconds (UTC). Ids are integers, never reused.

CREATE TABLE workspaces (
    id          INTEGER PRIMARY KEY,
    slug        TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    -- Public key the web widget and customer clients present; grants only the right to
    -- start or continue one's own conversation.
    widget_key  TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE agents (
    id              INTEGER PRIMARY KEY,
    workspace_id    INTEGER NOT NULL REFERENCES workspaces(id),
    email           TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    role            TEXT    NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin')),
    -- Argon2id, PHC string format.
    password_hash   TEXT    NOT NULL,
    max_concurrent  INTEGER NOT NULL DEFAULT 5 CHECK (max_concurrent >= 0),
    created_at      INTEGER NOT NULL,
    disabled_at     INTEGER,
    UNIQUE (workspace_id, email)
);
CREATE INDEX agents_email ON agents(email);

CREATE TABLE agent_skills (
    agent_id      INTEGER NOT NULL REFERENCES agents(id),
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    skill         TEXT    NOT NULL,
    level         TEXT    CHECK (level IS NULL OR level IN ('junior', 'senior')),
    PRIMARY KEY (agent_id, skill)
);

-- Bearer tokens of agents: only their SHA-256 is stored.
CREATE TABLE agent_tokens (
    id            INTEGER PRIMARY KEY,
    token_hash    BLOB    NOT NULL UNIQUE,
    agent_id      INTEGER NOT NULL REFERENCES agents(id),
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked_at    INTEGER,
    created_from  TEXT
);

CREATE TABLE contacts (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    name          TEXT,
    vip           INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

-- One row per channel a contact is known on (web visitor id, shop customer id, ...).
CREATE TABLE contact_identities (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    contact_id    INTEGER NOT NULL REFERENCES contacts(id),
    channel_kind  TEXT    NOT NULL,
    external_id   TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    UNIQUE (workspace_id, channel_kind, external_id)
);

-- Tokens that let a customer client resume as its contact: only their SHA-256 is stored.
CREATE TABLE customer_tokens (
    token_hash    BLOB    PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    contact_id    INTEGER NOT NULL REFERENCES contacts(id),
    created_at    INTEGER NOT NULL
);

CREATE TABLE conversations (
    id                    INTEGER PRIMARY KEY,
    workspace_id          INTEGER NOT NULL REFERENCES workspaces(id),
    contact_id            INTEGER NOT NULL REFERENCES contacts(id),
    channel_kind          TEXT    NOT NULL,
    state                 TEXT    NOT NULL CHECK (state IN ('bot', 'queued', 'assigned', 'resolved', 'closed')),
    assignee_agent_id     INTEGER REFERENCES agents(id),
    -- Sequence number of the latest message; the next one gets last_seq + 1.
    last_seq              INTEGER NOT NULL DEFAULT 0,
    created_at            INTEGER NOT NULL,
    queued_at             INTEGER,
    assigned_at           INTEGER,
    first_agent_reply_at  INTEGER,
    resolved_at           INTEGER,
    closed_at             INTEGER,
    resolution            TEXT,
    updated_at            INTEGER NOT NULL
);
CREATE INDEX conversations_open ON conversations(workspace_id, state) WHERE state <> 'closed';
CREATE INDEX conversations_contact ON conversations(contact_id, created_at);

CREATE TABLE messages (
    conversation_id  INTEGER NOT NULL REFERENCES conversations(id),
    seq              INTEGER NOT NULL,
    workspace_id     INTEGER NOT NULL REFERENCES workspaces(id),
    author_kind      TEXT    NOT NULL CHECK (author_kind IN ('customer', 'agent', 'bot', 'system')),
    -- contacts.id for customers, agents.id for agents, NULL for bot and system.
    author_id        INTEGER,
    client_msg_id    TEXT,
    body             TEXT    NOT NULL,
    format           TEXT    NOT NULL DEFAULT 'text',
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, seq)
) WITHOUT ROWID;
-- A client message id is unique per author: a re-sent message is stored once.
CREATE UNIQUE INDEX messages_client_msg_id
    ON messages(workspace_id, author_kind, author_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;

-- The last sequence number each reader has read, per conversation.
CREATE TABLE read_receipts (
    conversation_id  INTEGER NOT NULL REFERENCES conversations(id),
    reader_kind      TEXT    NOT NULL,
    reader_id        INTEGER NOT NULL,
    workspace_id     INTEGER NOT NULL REFERENCES workspaces(id),
    last_read_seq    INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, reader_kind, reader_id)
) WITHOUT ROWID;

-- Append-only log of everything that happened: conversation transitions, logins, admin
-- operations. The triggers make it append-only for every writer, the relay included.
CREATE TABLE events (
    id               INTEGER PRIMARY KEY,
    workspace_id     INTEGER NOT NULL REFERENCES workspaces(id),
    at               INTEGER NOT NULL,
    kind             TEXT    NOT NULL,
    actor_kind       TEXT    NOT NULL,
    actor_id         INTEGER,
    conversation_id  INTEGER,
    data             TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX events_conversation ON events(conversation_id) WHERE conversation_id IS NOT NULL;
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
