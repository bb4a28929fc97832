-- Event photos (spatial/photos.py): who may attach one.
--
-- 130_access.sql lets the roles in layer_access.can_insert insert into
-- event_photo and lets callers read the photos of events they can see. The
-- insert was not tied to the event: a grid worker who learned another grid's
-- event id could attach a picture to it. Attaching now requires the event to
-- be visible to the caller (the sub-select obeys the event's own policy), as
-- reading does. Re-runnable.

DROP POLICY IF EXISTS scoped_write ON onemap.event_photo;
CREATE POLICY scoped_write ON onemap.event_photo AS RESTRICTIVE FOR ALL TO onemap_api
USING (true) WITH CHECK (
    event_id IN (SELECT e.id FROM onemap.event e)
);
