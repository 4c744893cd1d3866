/* bc_failpoint: named crash points for fault-injection tests. Compiled into
 * every build and off unless BC_FAILPOINT names one; then the process
 * aborts there, as a power cut would stop it. */
#ifndef BC_FAILPOINT_H
#define BC_FAILPOINT_H

/* Aborts the process if the environment variable BC_FAILPOINT equals name. */
void bc_failpoint(const char *name);

#endif
