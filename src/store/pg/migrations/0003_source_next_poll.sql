-- When the replica holding a source polls it next (issue 17): written with each renewal of
-- the source's lease (after every poll with the new time), so a replica taking the source over
-- keeps its schedule (and a server's Retry-After) instead of polling at once. Database time,
-- like `lease_until`. NULL until the source's first poll.
ALTER TABLE source_state ADD COLUMN next_poll timestamptz;
