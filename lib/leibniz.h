/* leibniz: the one public header. */
#ifndef LEIBNIZ_H
#define LEIBNIZ_H

#include "core/core.h"
#include "ops/ops.h"
#include "autograd/autograd.h"

#endif
