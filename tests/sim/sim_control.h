/* sim_control: what tests ask of the carrier simulator: faults for the
 * next creates or callbacks (/faults) and the outcomes of the next calls to
 * a number (/outcomes). */
#ifndef SIM_CONTROL_H
#define SIM_CONTROL_H

#include "sim_model.h"

/* GET or POST /faults (takes s->mu). */
void sim_control_faults(sim *s, const bc_http_req *req, bc_http_resp *resp);
/* GET or POST /outcomes (takes s->mu). */
void sim_control_outcomes(sim *s, const bc_http_req *req, bc_http_resp *resp);
/* {"pending": {...}, "played": {...}} (s->mu held). */
json_t *sim_control_faults_json(sim *s);
/* 1 if o is an outcome a call can be given (completed, busy, no-answer,
 * failed, voicemail). */
int sim_control_outcome_ok(const char *o);

#endif
