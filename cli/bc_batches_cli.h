/* bc_batches_cli: `batchcall batches ...`, a tenant's commands. Unlike the
 * admin commands beside them (which talk to PostgreSQL), these talk only to
 * the public HTTP API with the tenant's own key: create a batch from a CSV
 * file, watch it, list, show, cancel and retry. docs/cli.md describes them. */
#ifndef BC_BATCHES_CLI_H
#define BC_BATCHES_CLI_H

/* argv[0] is "batches". Returns the process exit status: 0 done, 1 the API
 * refused or could not be reached, 2 bad usage or input, 130 interrupted.
 * Errors are printed to stderr as "batchcall: ...". */
int bc_batches_cli_main(int argc, char **argv);

#endif
