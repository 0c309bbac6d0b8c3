/* Inside lib/autograd: how rule files register themselves, and the stop-gradient marker. */
#ifndef LZ_AUTOGRAD_RULES_H
#define LZ_AUTOGRAD_RULES_H

#include "../core/internal.h"
#include "../ops/ops.h"
#include "autograd.h"

/* lz_stop_gradient is a VIEW node with the input's own layout, marked in a params slot that
 * view constructors leave zero: the view rule gives it no cotangent. */
#define AD_STOP_SLOT 23
#define AD_STOP_TAG 0x73746f70   /* "stop" */

/* Each rule file fills lz_prims[].vjp for its family; lz_autograd_init calls them once. */
void ad_register_elementwise(void);
void ad_register_view(void);
void ad_register_reduce(void);
void ad_register_index(void);
void ad_register_linalg(void);
void ad_register_nn(void);
void ad_register_conv(void);

/* Layout helper shared by the transforms and the view rule: whether distinct indices of a
 * layout always address distinct elements (no broadcast dims, no overlap). */
bool ad_layout_injective(int ndim, const int64_t *shape, const int64_t *strides);

#endif
