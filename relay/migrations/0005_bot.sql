-- The bot: what it found each conversation to be about.
ALTER TABLE conversations ADD COLUMN intent TEXT;
