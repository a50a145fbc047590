-- The event log becomes a hash chain (relay/src/audit.rs): each entry's hash covers the
-- entry before it. Entries written before this have none and stay outside the chain.
ALTER TABLE events ADD COLUMN hash BLOB;
