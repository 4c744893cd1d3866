-- Vacuum recipients by how many of its rows died, not by what share.
--
-- The scheduler's probes walk recipients_active (unfinished_batches(),
-- sql/0036), and every change of a recipient's status or release leaves a
-- dead entry there until vacuum: the walk passes over them, a page read
-- for every hundred or so. Autovacuum's default waits for a fifth of the
-- table to be dead, so the dead entries between two vacuums, and the
-- walk's cost with them, grew with the table: in the one-hour soak at
-- fd18dcb the walk read 18 pages just after a vacuum and 150-160 just
-- before the next (35,600 dead rows, at minute 30), and the running
-- probe's mean grew from 20 pages a call at minute 5 to 60-125 at 25
-- (bench/RESULTS.md, thirtieth session).
--
-- Vacuumed every 10,000 dead rows (about 25 s at 100 calls a second),
-- those entries stay bounded whatever the table's size. Index cleanup is
-- forced on: dead rows that few sit on under 2 % of the table's pages,
-- where vacuum would otherwise skip the indexes (PostgreSQL 14's bypass)
-- and leave the entries the walk reads. Each vacuum still reads every
-- index of the table, a cost that grows with it; keeping finished
-- batches' recipients out of the hot table is the lasting answer.
ALTER TABLE recipients SET (autovacuum_vacuum_scale_factor = 0,
                            autovacuum_vacuum_threshold = 10000,
                            vacuum_index_cleanup = on);
