-- What the agent workstation needs: private notes, attachments, canned replies.

-- A private note between agents: never delivered to the customer.
ALTER TABLE messages ADD COLUMN internal INTEGER NOT NULL DEFAULT 0;
-- The files attached to a message, as JSON: [{"id","name","size","content_type"}].
ALTER TABLE messages ADD COLUMN attachments TEXT;

-- Files uploaded into a conversation, stored on disk under the data dir by id.
CREATE TABLE attachments (
    id               TEXT    PRIMARY KEY,
    workspace_id     INTEGER NOT NULL REFERENCES workspaces(id),
    conversation_id  INTEGER NOT NULL REFERENCES conversations(id),
    uploader_kind    TEXT    NOT NULL CHECK (uploader_kind IN ('customer', 'agent')),
    uploader_id      INTEGER NOT NULL,
    name             TEXT    NOT NULL,
    content_type     TEXT    NOT NULL,
    size             INTEGER NOT NULL,
    sha256           BLOB    NOT NULL,
    created_at       INTEGER NOT NULL
);
CREATE INDEX attachments_conversation ON attachments(conversation_id);

-- Canned replies: shared by the workspace (owner NULL) or personal to an agent.
CREATE TABLE canned_replies (
    id              INTEGER PRIMARY KEY,
    workspace_id    INTEGER NOT NULL REFERENCES workspaces(id),
    owner_agent_id  INTEGER REFERENCES agents(id),
    shortcut        TEXT    NOT NULL,
    title           TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX canned_replies_shortcut ON canned_replies(workspace_id, COALESCE(owner_agent_id, 0), shortcut);
