-- Where an operation came from: the client's address, for what arrives over HTTP.
ALTER TABLE events ADD COLUMN origin TEXT;
