-- Where a stored credential came from (set by an administrator, or provisioned through
-- Bitbucket's access-token API at the user's sign-in), and when Bitbucket refused it: a
-- refused credential is not sent again until it is replaced.
ALTER TABLE credentials ADD COLUMN provisioned BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE credentials ADD COLUMN refused_at TIMESTAMPTZ;
