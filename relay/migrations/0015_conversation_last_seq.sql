-- A conversation's last sequence number is its messages' own (max(seq) over the primary
-- key, one lookup). Keeping a copy in the conversation's row cost one more page written
-- per message: a third of what a message costs to commit when traffic is spread over
-- many conversations (docs/BENCHMARKS.md). `updated_at` now moves with the conversation's
-- state, not with each message.
ALTER TABLE conversations DROP COLUMN last_seq;
