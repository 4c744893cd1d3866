-- A call's row is updated four or five times after its insert (dialing,
-- accepted, ringing/in-progress, the answering-machine verdict, the end),
-- and none but the end changes an indexed column. With every page filled
-- at insert, each of those updates had to put the new version on another
-- page and add it to all five indexes: 12 % of them were HOT in B2. With 30 %
-- of each page kept free they stay on their page: 61 % HOT (the end,
-- which leaves calls_open, can never be). New pages hold about 30 % fewer rows
-- (the dead versions are pruned in place).
-- Only pages written from now on keep the room.
ALTER TABLE calls SET (fillfactor = 70);
