-- Written by hand (drizzle-kit does not express storage parameters; the snapshot is the one before, unchanged).
-- A member row is updated far more often than it is written: its delivered cursor on every pull and push, its read
-- cursor on every read receipt, its last sent seq on every message sent. None of those columns is indexed, so an
-- update can stay on its page (a HOT update: no new entry in the primary key or the user index) as long as the page
-- has room for the new version. Pages filled to 80% keep that room; pages filled full (the default) make the first
-- update of a row after a load go to another page and into both indexes. Pages written from now on are filled to
-- 80%; existing ones keep their rows until they are rewritten (VACUUM FULL, pg_repack).
ALTER TABLE "members" SET (fillfactor = 80);
