/* bc_dashboard: the /dashboard page, served from the binary (CMake embeds
 * api/dashboard.html and api/dashboard.js, as it does api/openapi.json).
 * The page itself holds no data and needs no key: it asks the person for
 * their secret key and reads /progress/batches with it in an Authorization
 * header, so the key never travels in a URL (nor lands in an access log).
 * docs/dashboard.md has the choices. */
#ifndef BC_DASHBOARD_H
#define BC_DASHBOARD_H

#include "bc_api.h"

/* Its routes: GET (and HEAD) /dashboard and /dashboard/app.js. */
bc_http_surface bc_dashboard_surface(bc_api *api);

#endif
