-- Reports read a workspace's conversations by the time they were opened.
CREATE INDEX conversations_created ON conversations(workspace_id, created_at);
