-- New outbox entries wake every replica's relay (issue 17): each transaction that inserts
-- outbox rows sends one notification on the channel `mentiondesk_outbox`, delivered when it
-- commits (never for a rollback; PostgreSQL folds a transaction's identical notifications
-- into one). Each replica LISTENs on a connection of its own and rings its relay, so an entry
-- written by another replica is delivered at once instead of at the relay's idle tick. A
-- trigger rather than a `pg_notify` in each writing statement, so no writer can forget it.
CREATE FUNCTION mentiondesk_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mentiondesk_outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify
    AFTER INSERT ON outbox
    FOR EACH STATEMENT
    EXECUTE FUNCTION mentiondesk_outbox_notify();
