-- Audit events arrive in time order, so an ascending time index only ever grows at its right
-- edge, where a page split is cheap. The descending one took every new event at its left edge,
-- shifting cells and splitting pages on each insert. Either direction serves `ORDER BY time
-- DESC` (an index is read backwards as cheaply as forwards).
DROP INDEX audit_events_by_time;
CREATE INDEX audit_events_by_time_asc ON audit_events (time, id);
