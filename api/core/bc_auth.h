/* bc_auth: who is calling. Keys are looked up by their lookup part and
 * compared by hash in constant time; nothing about a key is logged. */
#ifndef BC_AUTH_H
#define BC_AUTH_H

#include "bc_api.h"

typedef enum {
    BC_AUTH_OK = 0,
    BC_AUTH_MISSING,    /* no credentials presented */
    BC_AUTH_INVALID,    /* malformed, unknown, revoked or wrong */
    BC_AUTH_ERROR,      /* could not check (database down) */
} bc_auth_result;

/* Checks a presented key; fills who on success. */
bc_auth_result bc_auth_key(bc_pg *pg, const char *token, bc_principal *who);

/* Reads the key from Authorization: Bearer, or X-API-Key, or the pair
 * X-API-KEY + X-API-SECRET, whichever is present, and checks it. */
bc_auth_result bc_auth_request(bc_pg *pg, const bc_http_req *req,
                               bc_principal *who);

#endif
