/* Test stand-in for <Metal/Metal.h>: the subset of the Metal API that
   bitnet_metal.m calls, with Apple's names, selectors and types, for
   building and running bitnet_metal.m on Linux with GNUstep (tests only).

   It follows Apple's Metal framework headers and documentation
   (developer.apple.com/documentation/metal, Objective-C declarations of
   MTLDevice, MTLBuffer, MTLResource, MTLCommandQueue, MTLCommandBuffer,
   MTLCommandEncoder, MTLComputeCommandEncoder, MTLLibrary, MTLFunction,
   MTLComputePipelineState, MTLCompileOptions, MTLTypes' MTLSize and
   MTLResourceOptions): each declaration below has the selector, argument and
   result types of its Apple counterpart (NSUInteger, BOOL, MTLSize by value,
   NSError ** out-arguments, nullable results); nothing is declared that
   Apple's headers lack. Apple's availability macros and nullability
   annotations are left out.

   What the implementation (Metal.m) does: a device that is "the GPU" of the
   emulator in tests/metal: newLibraryWithSource compiles nothing, it checks
   that the source is exactly src/metal/bitnet.metal (the file the emulated
   kernels were compiled from) and fails like a compiler otherwise; command
   buffers record the dispatches and run them through bnm_dispatch when
   waited on. Buffers are plain memory (unified memory, as Apple silicon);
   newBufferWithBytesNoCopy refuses a pointer or length that is not whole
   16 KB pages, as Metal does on Apple silicon. */
#ifndef BNM_STANDIN_METAL_H
#define BNM_STANDIN_METAL_H
#import <Foundation/Foundation.h>

typedef struct {
    NSUInteger width, height, depth;
} MTLSize;
static inline MTLSize MTLSizeMake(NSUInteger width, NSUInteger height, NSUInteger depth) {
    MTLSize s;
    s.width = width;
    s.height = height;
    s.depth = depth;
    return s;
}

/* MTLResource.h */
typedef NSUInteger MTLResourceOptions;
enum {
    MTLResourceCPUCacheModeDefaultCache = 0,
    MTLResourceCPUCacheModeWriteCombined = 1,
    MTLResourceStorageModeShared = 0 << 4,
    MTLResourceStorageModeManaged = 1 << 4,
    MTLResourceStorageModePrivate = 2 << 4,
    MTLResourceHazardTrackingModeDefault = 0 << 8,
    MTLResourceHazardTrackingModeUntracked = 1 << 8,
    MTLResourceHazardTrackingModeTracked = 2 << 8
};

/* MTLCommandBuffer.h */
typedef NSUInteger MTLCommandBufferStatus;
enum {
    MTLCommandBufferStatusNotEnqueued = 0,
    MTLCommandBufferStatusEnqueued = 1,
    MTLCommandBufferStatusCommitted = 2,
    MTLCommandBufferStatusScheduled = 3,
    MTLCommandBufferStatusCompleted = 4,
    MTLCommandBufferStatusError = 5
};

@protocol MTLDevice;

@protocol MTLResource <NSObject>
@property (readonly) id<MTLDevice> device;
@end

@protocol MTLBuffer <MTLResource>
@property (readonly) NSUInteger length;
- (void *)contents;
@end

@protocol MTLFunction <NSObject>
@property (readonly) NSString *name;
@end

@protocol MTLLibrary <NSObject>
- (id<MTLFunction>)newFunctionWithName:(NSString *)functionName;
@end

@protocol MTLComputePipelineState <NSObject>
@property (readonly) NSUInteger maxTotalThreadsPerThreadgroup;
@property (readonly) NSUInteger threadExecutionWidth;
@end

@protocol MTLCommandEncoder <NSObject>
- (void)endEncoding;
@end

@protocol MTLComputeCommandEncoder <MTLCommandEncoder>
- (void)setComputePipelineState:(id<MTLComputePipelineState>)state;
- (void)setBytes:(const void *)bytes length:(NSUInteger)length atIndex:(NSUInteger)index;
- (void)setBuffer:(id<MTLBuffer>)buffer offset:(NSUInteger)offset atIndex:(NSUInteger)index;
- (void)dispatchThreadgroups:(MTLSize)threadgroupsPerGrid threadsPerThreadgroup:(MTLSize)threadsPerThreadgroup;
@end

@protocol MTLCommandBuffer <NSObject>
@property (readonly) MTLCommandBufferStatus status;
@property (readonly) NSError *error;
- (id<MTLComputeCommandEncoder>)computeCommandEncoder;
- (void)commit;
- (void)waitUntilCompleted;
@end

@protocol MTLCommandQueue <NSObject>
- (id<MTLCommandBuffer>)commandBuffer;
@end

@interface MTLCompileOptions : NSObject <NSCopying> {
  @private
    BOOL bnm_fast_math; /* the stand-in's storage (GCC's runtime needs ivars declared here) */
}
@property (readwrite, nonatomic) BOOL fastMathEnabled; /* deprecated by Apple in macOS 15 (mathMode), still honoured */
@end

@protocol MTLDevice <NSObject>
@property (readonly) NSString *name;
@property (readonly) BOOL hasUnifiedMemory;
@property (readonly) NSUInteger maxBufferLength;
- (id<MTLCommandQueue>)newCommandQueue;
- (id<MTLLibrary>)newLibraryWithSource:(NSString *)source options:(MTLCompileOptions *)options error:(NSError **)error;
- (id<MTLComputePipelineState>)newComputePipelineStateWithFunction:(id<MTLFunction>)computeFunction error:(NSError **)error;
- (id<MTLBuffer>)newBufferWithLength:(NSUInteger)length options:(MTLResourceOptions)options;
- (id<MTLBuffer>)newBufferWithBytes:(const void *)pointer length:(NSUInteger)length options:(MTLResourceOptions)options;
- (id<MTLBuffer>)newBufferWithBytesNoCopy:(void *)pointer
                                   length:(NSUInteger)length
                                  options:(MTLResourceOptions)options
                              deallocator:(void (^)(void *pointer, NSUInteger length))deallocator;
@end

#ifdef __cplusplus
extern "C" {
#endif
id<MTLDevice> MTLCreateSystemDefaultDevice(void) NS_RETURNS_RETAINED; /* a new reference, as Apple declares it */

/* Test controls, not Apple API: make the next call of `what` fail as Metal
   can ("device": no device; "library": the source does not compile;
   "newBufferWithLength", "newBufferWithBytes", "newBufferWithBytesNoCopy":
   that allocation returns nil; "execute": the command buffer ends in
   MTLCommandBufferStatusError), count the stand-in's objects alive, and
   what the last library was compiled with. */
void MTLStandinFailNext(const char *what);
long MTLStandinLiveObjects(void);
int MTLStandinLastFastMath(void);
long MTLStandinDispatches(void);
#ifdef __cplusplus
}
#endif

#endif
