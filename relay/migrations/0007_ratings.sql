-- Customer satisfaction: one rating per conversation (a second one replaces the first).
CREATE TABLE ratings (
    conversation_id  INTEGER PRIMARY KEY REFERENCES conversations(id),
    workspace_id     INTEGER NOT NULL REFERENCES workspaces(id),
    contact_id       INTEGER NOT NULL REFERENCES contacts(id),
    -- The agent who served the conversation, when one did.
    agent_id         INTEGER REFERENCES agents(id),
    score            INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
    comment          TEXT,
    created_at       INTEGER NOT NULL
);
CREATE INDEX ratings_workspace ON ratings(workspace_id, created_at);
CREATE INDEX ratings_agent ON ratings(agent_id, created_at);

-- Origins allowed to embed the widget and call the customer API from a browser: a JSON
-- array such as ["https://shop.example"]; empty allows every origin.
ALTER TABLE workspaces ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '[]';
