-- Tickets: requests that wait for work outside a live chat (a message left while nobody
-- was online, a follow-up an agent promised).

CREATE TABLE tickets (
    id               INTEGER PRIMARY KEY,
    workspace_id     INTEGER NOT NULL REFERENCES workspaces(id),
    subject          TEXT    NOT NULL,
    description      TEXT    NOT NULL,
    status           TEXT    NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'pending', 'solved', 'closed')),
    priority         TEXT    NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    assignee_agent_id INTEGER REFERENCES agents(id),
    group_id         INTEGER REFERENCES groups(id),
    contact_id       INTEGER REFERENCES contacts(id),
    conversation_id  INTEGER REFERENCES conversations(id),
    -- customer (left a message), agent (made it), system (made it automatically)
    created_by_kind  TEXT    NOT NULL,
    created_by_id    INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX tickets_status ON tickets(workspace_id, status, updated_at);
CREATE INDEX tickets_assignee ON tickets(assignee_agent_id, status);

CREATE TABLE ticket_notes (
    id           INTEGER PRIMARY KEY,
    ticket_id    INTEGER NOT NULL REFERENCES tickets(id),
    author_kind  TEXT    NOT NULL,
    author_id    INTEGER,
    body         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX ticket_notes_ticket ON ticket_notes(ticket_id);
