-- The audit trail as segments: one row per written batch of events, its body encoded by the
-- gateway (format 1: texts that repeat within the batch stored once). An event costs a share
-- of one insert instead of a row and two index entries, and about a fifth of the space.
-- Event ids are the segment id times 65536 plus the event's index in its batch; AUTOINCREMENT
-- keeps them from ever being handed out twice.
-- Rows of the former audit_events table are moved into segments by the gateway right after
-- this migration, which then drops that table.
CREATE TABLE audit_segments (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    format     INTEGER NOT NULL,
    -- Earliest and latest event time, unix milliseconds.
    first_time INTEGER NOT NULL,
    last_time  INTEGER NOT NULL,
    events     INTEGER NOT NULL,
    -- The event types held, one bit per type.
    kinds      INTEGER NOT NULL,
    body       BLOB NOT NULL
) STRICT;

-- Queries read newest first by latest event, purges oldest first by earliest event. A row is
-- about a page (most of its body), so the indexes also hold what is checked before a body is
-- read: the types (a query by type skips the rows without it) and the count (max_rows sums it).
CREATE INDEX audit_segments_by_last_time ON audit_segments (last_time, id, kinds);
CREATE INDEX audit_segments_by_first_time ON audit_segments (first_time, id, events);

-- The users ('u:' + name) and token ids ('t:' + id) each segment holds, so a query filtered
-- by either reads only the segments that hold it.
CREATE TABLE audit_segment_keys (
    key        TEXT NOT NULL,
    segment_id INTEGER NOT NULL,
    PRIMARY KEY (key, segment_id)
) STRICT, WITHOUT ROWID;
