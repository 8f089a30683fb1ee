/* One include for the util layer; banned.h last so it also guards the includer. */
#ifndef EXPT_UTIL_UTIL_H
#define EXPT_UTIL_UTIL_H

/* System headers that declare banned functions come before banned.h redefines them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "err.h"
#include "fs.h"
#include "imgref.h"
#include "mem.h"
#include "parse.h"
#include "projfiles.h"
#include "strv.h"
#include "text.h"

#include "banned.h"

#endif
