/* GNUstep's Foundation includes this header when the compiler has blocks
   (-fblocks, needed for the block type in Metal.h's
   newBufferWithBytesNoCopy:...deallocator:). Debian's GCC Objective-C runtime
   has no blocks runtime; none is needed, since the tests only pass nil for
   that argument and make no block. Tests only. */
#ifndef BNM_BLOCKS_RUNTIME_H
#define BNM_BLOCKS_RUNTIME_H
#endif
