-- The knowledge base: articles agents search and the bot answers from. The search index
-- is built from this table in memory at start (see kb.rs); this table is the truth.

CREATE TABLE kb_articles (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    -- A stable name for imports and links (e.g. return-policy-zh).
    slug          TEXT    NOT NULL,
    title         TEXT    NOT NULL,
    -- Markdown.
    body          TEXT    NOT NULL,
    -- JSON arrays of strings.
    tags          TEXT    NOT NULL DEFAULT '[]',
    intents       TEXT    NOT NULL DEFAULT '[]',
    -- zh, en, …
    language      TEXT    NOT NULL DEFAULT 'zh',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (workspace_id, slug)
);
