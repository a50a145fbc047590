-- Routing: skill groups with escalation rules, agents' skills in them, and each
-- conversation's target group and queue priority.

CREATE TABLE groups (
    id                   INTEGER PRIMARY KEY,
    workspace_id         INTEGER NOT NULL REFERENCES workspaces(id),
    slug                 TEXT    NOT NULL,
    name                 TEXT    NOT NULL,
    -- Where conversations go after waiting escalate_after_secs here.
    fallback_group_id    INTEGER REFERENCES groups(id),
    -- NULL: never escalate.
    escalate_after_secs  INTEGER CHECK (escalate_after_secs IS NULL OR escalate_after_secs > 0),
    -- With no fallback: escalate to any online agent.
    widen                INTEGER NOT NULL DEFAULT 0,
    -- New conversations with no chosen group go to the workspace's default group.
    is_default           INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL,
    UNIQUE (workspace_id, slug)
);
CREATE UNIQUE INDEX groups_one_default ON groups(workspace_id) WHERE is_default = 1;

-- The skills of the foundation schema named free-form skills; skills are groups now.
DROP TABLE agent_skills;
CREATE TABLE agent_skills (
    agent_id      INTEGER NOT NULL REFERENCES agents(id),
    group_id      INTEGER NOT NULL REFERENCES groups(id),
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    level         TEXT    NOT NULL DEFAULT 'junior' CHECK (level IN ('junior', 'senior')),
    PRIMARY KEY (agent_id, group_id)
);

ALTER TABLE conversations ADD COLUMN group_id INTEGER REFERENCES groups(id);
-- Queue order: lower first (see routing.rs).
ALTER TABLE conversations ADD COLUMN priority INTEGER NOT NULL DEFAULT 200;
-- Whether an agent has replied since the conversation was last assigned (re-routing).
ALTER TABLE conversations ADD COLUMN answered INTEGER NOT NULL DEFAULT 0;
CREATE INDEX conversations_assignee ON conversations(assignee_agent_id, resolved_at);
CREATE INDEX events_kind ON events(conversation_id, kind);
