-- Credential changes for watchers in other processes (a credential set with the CLI reaches a
-- running gateway's cache at once): a row with this user and an empty token_id.
ALTER TABLE token_changes ADD COLUMN user_name TEXT;
