/* The library's implementation, compiled once per build flavour and linked
   into every harness (harnesses include bitnet.h without BITNET_IMPLEMENTATION). */
#define BITNET_IMPLEMENTATION
#include "../../bitnet.h"
