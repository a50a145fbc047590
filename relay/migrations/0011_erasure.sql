-- Erasure on request: a contact whose data was erased keeps its row (conversations and
-- tickets point at it) with no name, and says when.
ALTER TABLE contacts ADD COLUMN erased_at INTEGER;
