/* bc_dashboard: the /dashboard page, served from the binary (CMake embeds
 * api/dashboard.html and api/dashboard.js, as it does api/openapi.json).
 * The page itself holds no data and needs no key: it asks the person for
 * their secret key and reads /progress/batches with it in an Authorization
 * header, so the key never travels in a URL (nor lands in an access log).
 * docs/dashboard.md has the choices. */
#ifndef BC_DASHBOARD_H
#define BC_DASHBOARD_H

#include "bc_api.h"

/* Serves GET /dashboard and /dashboard/app.js; 1 if the path was one of
 * them, else 0. */
int bc_dashboard_handle(bc_api *api, const bc_http_req *req, bc_http_resp *resp);

#endif
