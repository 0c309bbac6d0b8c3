/* leibniz: the one public header. */
#ifndef LEIBNIZ_H
#define LEIBNIZ_H

#include "core/core.h"
#include "ops/ops.h"
#include "autograd/autograd.h"
#include "nn/nn.h"
#include "optim/optim.h"
#include "io/config.h"
#include "io/image.h"
#include "io/checkpoint.h"
#include "io/metrics.h"
#include "data/data.h"
#include "dist/dist.h"

#endif
