/* Internal to spec/: the limits of a spec, and the YAML tree and diagnostics it is read with
 * (util/yaml.h, util/diag.h). */
#ifndef EXPT_SPEC_NODE_H
#define EXPT_SPEC_NODE_H

#include "../util/diag.h"
#include "../util/yaml.h"
#include "spec.h"

/* Hard limits on what one spec may contain, so that no input can make loading slow or big. */
#define EXPT_SPEC_MAX_BYTES (1024 * 1024) /* spec file size */

#endif
