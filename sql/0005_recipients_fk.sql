-- A recipient row is only ever written in the transaction that writes its
-- batch, by one statement that names that batch: the foreign key re-proved
-- it 5,000 times per batch (a trigger per row), more than doubling the
-- cost of the COPY that stores a batch. The batch id is still indexed.
ALTER TABLE recipients DROP CONSTRAINT recipients_batch_id_fkey;
