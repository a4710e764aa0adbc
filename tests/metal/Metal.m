/* The Metal API stand-in (tests only; declarations and what they follow in
   Metal/Metal.h): a device whose command buffers run the kernels of
   src/metal/bitnet.metal through the emulator (tests/metal/kernels.cpp).
   Built with manual reference counting (GNUstep's runtime has no ARC), and
   it counts its objects so that a test can tell that bitnet_metal.m released
   every one it made. */
#import "Metal/Metal.h"
#include "emulator.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BNM_PAGE 16384 /* Apple silicon's page size */
#define BNM_MAX_BUFFERS 31 /* Metal's buffer argument table */

static long live_objects, n_dispatches;
static int last_fast_math = -1;
static char fail_next[32];

void MTLStandinFailNext(const char *what) { snprintf(fail_next, sizeof fail_next, "%s", what ? what : ""); }
long MTLStandinLiveObjects(void) { return live_objects; }
int MTLStandinLastFastMath(void) { return last_fast_math; }
long MTLStandinDispatches(void) { return n_dispatches; }

static BOOL should_fail(const char *what) {
    if (strcmp(fail_next, what) != 0) return NO;
    fail_next[0] = 0;
    return YES;
}

static NSError *make_error(NSString *text) {
    return [NSError errorWithDomain:@"MTLStandin" code:1 userInfo:[NSDictionary dictionaryWithObject:text forKey:NSLocalizedDescriptionKey]];
}

@interface BNMObject : NSObject
@end
@implementation BNMObject
- (id)init {
    if ((self = [super init])) live_objects++;
    return self;
}
- (void)dealloc {
    live_objects--;
    [super dealloc];
}
@end

@interface BNMDevice : BNMObject <MTLDevice>
@end

@interface BNMBuffer : BNMObject <MTLBuffer> {
  @public
    BNMDevice *dev;
    void *bytes;
    NSUInteger len;
    BOOL owned;
}
@end
@implementation BNMBuffer
- (id<MTLDevice>)device { return dev; }
- (NSUInteger)length { return len; }
- (void *)contents { return bytes; }
- (void)dealloc {
    if (owned) free(bytes);
    [super dealloc];
}
@end

@interface BNMFunction : BNMObject <MTLFunction> {
  @public
    NSString *fname;
}
@end
@implementation BNMFunction
- (NSString *)name { return fname; }
- (void)dealloc {
    [fname release];
    [super dealloc];
}
@end

@interface BNMLibrary : BNMObject <MTLLibrary> {
  @public
    NSString *source;
}
@end
@implementation BNMLibrary
- (id<MTLFunction>)newFunctionWithName:(NSString *)functionName {
    NSString *decl = [NSString stringWithFormat:@"\nkernel void %@(", functionName];
    BNMFunction *f;
    if ([source rangeOfString:decl].location == NSNotFound || bnm_kernel_buffers([functionName UTF8String]) < 0) return nil;
    f = [[BNMFunction alloc] init];
    f->fname = [functionName copy];
    return f;
}
- (void)dealloc {
    [source release];
    [super dealloc];
}
@end

@interface BNMPipeline : BNMObject <MTLComputePipelineState> {
  @public
    char kernel[64];
}
@end
@implementation BNMPipeline
- (NSUInteger)maxTotalThreadsPerThreadgroup { return 1024; }
- (NSUInteger)threadExecutionWidth { return 32; }
@end

/* A recorded dispatch: the kernel, its argument table (addresses), the threadgroups. */
typedef struct bnm_command {
    char kernel[64];
    void *args[BNM_MAX_BUFFERS];
    int n_args;
    unsigned groups[3], threads[3];
} bnm_command;

@interface BNMCommandBuffer : BNMObject <MTLCommandBuffer> {
  @public
    bnm_command *cmds;
    int n_cmds, cap;
    NSMutableArray *retained; /* buffers and argument bytes the commands use */
    MTLCommandBufferStatus st;
    NSError *err;
    BOOL encoding, fail;
}
- (void)fail:(NSString *)why;
@end

@interface BNMEncoder : BNMObject <MTLComputeCommandEncoder> {
  @public
    BNMCommandBuffer *cb; /* not retained: Metal's encoder is only valid while its command buffer is */
    BNMPipeline *pipeline;
    void *table[BNM_MAX_BUFFERS];
    BOOL ended;
}
@end

@implementation BNMEncoder
- (void)setComputePipelineState:(id<MTLComputePipelineState>)state {
    pipeline = (BNMPipeline *)state;
}
- (void)setBytes:(const void *)bytes length:(NSUInteger)length atIndex:(NSUInteger)index {
    NSData *copy;
    if (index >= BNM_MAX_BUFFERS || length > 4096) { /* Apple: setBytes is for data under 4 KB */
        [cb fail:@"setBytes: index or length out of range"];
        return;
    }
    copy = [NSData dataWithBytes:bytes length:length];
    [cb->retained addObject:copy];
    table[index] = (void *)[copy bytes];
}
- (void)setBuffer:(id<MTLBuffer>)buffer offset:(NSUInteger)offset atIndex:(NSUInteger)index {
    if (index >= BNM_MAX_BUFFERS || (buffer && offset > [buffer length])) {
        [cb fail:@"setBuffer: index or offset out of range"];
        return;
    }
    if (buffer) [cb->retained addObject:buffer];
    table[index] = buffer ? (char *)[buffer contents] + offset : NULL;
}
- (void)dispatchThreadgroups:(MTLSize)g threadsPerThreadgroup:(MTLSize)t {
    bnm_command *c;
    int n, i;
    if (ended || !pipeline) {
        [cb fail:ended ? @"dispatch after endEncoding" : @"dispatch without a pipeline state"];
        return;
    }
    if (t.width * t.height * t.depth > [pipeline maxTotalThreadsPerThreadgroup] || !t.width || !t.height || !t.depth) {
        [cb fail:@"threadsPerThreadgroup exceeds maxTotalThreadsPerThreadgroup"];
        return;
    }
    n = bnm_kernel_buffers(pipeline->kernel);
    for (i = 0; i < n; i++)
        if (!table[i]) {
            [cb fail:[NSString stringWithFormat:@"%s: buffer %d is not bound", pipeline->kernel, i]];
            return;
        }
    if (cb->n_cmds == cb->cap) {
        cb->cap = cb->cap ? 2 * cb->cap : 64;
        cb->cmds = (bnm_command *)realloc(cb->cmds, sizeof(bnm_command) * (size_t)cb->cap);
    }
    c = &cb->cmds[cb->n_cmds++];
    memset(c, 0, sizeof *c);
    snprintf(c->kernel, sizeof c->kernel, "%s", pipeline->kernel);
    memcpy(c->args, table, sizeof table);
    c->n_args = n;
    c->groups[0] = (unsigned)g.width, c->groups[1] = (unsigned)g.height, c->groups[2] = (unsigned)g.depth;
    c->threads[0] = (unsigned)t.width, c->threads[1] = (unsigned)t.height, c->threads[2] = (unsigned)t.depth;
}
- (void)endEncoding {
    ended = YES;
    cb->encoding = NO;
}
@end

@implementation BNMCommandBuffer
- (void)fail:(NSString *)why {
    if (!fail) {
        fail = YES;
        [err release];
        err = [make_error(why) retain];
    }
}
- (MTLCommandBufferStatus)status { return st; }
- (NSError *)error { return err; }
- (id<MTLComputeCommandEncoder>)computeCommandEncoder {
    BNMEncoder *e;
    if (st != MTLCommandBufferStatusNotEnqueued || encoding) return nil;
    e = [[BNMEncoder alloc] init];
    e->cb = self;
    encoding = YES;
    return [e autorelease];
}
- (void)commit {
    if (encoding) [self fail:@"commit before endEncoding"];
    st = MTLCommandBufferStatusCommitted;
}
/* The work runs here, not at commit: results exist only once waited for. */
- (void)waitUntilCompleted {
    char msg[512];
    int i;
    if (st != MTLCommandBufferStatusCommitted) return;
    if (should_fail("execute")) [self fail:@"Caused GPU Timeout Error (00000002:kIOGPUCommandBufferCallbackErrorTimeout)"];
    for (i = 0; i < n_cmds && !fail; i++) {
        n_dispatches++;
        if (bnm_dispatch(cmds[i].kernel, cmds[i].args, cmds[i].n_args, cmds[i].groups, cmds[i].threads, msg, sizeof msg))
            [self fail:[NSString stringWithUTF8String:msg]];
    }
    st = fail ? MTLCommandBufferStatusError : MTLCommandBufferStatusCompleted;
}
- (void)dealloc {
    free(cmds);
    [retained release];
    [err release];
    [super dealloc];
}
@end

@interface BNMQueue : BNMObject <MTLCommandQueue>
@end
@implementation BNMQueue
- (id<MTLCommandBuffer>)commandBuffer {
    BNMCommandBuffer *cb = [[BNMCommandBuffer alloc] init];
    cb->retained = [[NSMutableArray alloc] init];
    return [cb autorelease];
}
@end

@implementation MTLCompileOptions
- (id)init {
    if ((self = [super init])) bnm_fast_math = YES; /* Apple's default */
    return self;
}
- (BOOL)fastMathEnabled { return bnm_fast_math; }
- (void)setFastMathEnabled:(BOOL)on { bnm_fast_math = on; }
- (id)copyWithZone:(NSZone *)zone {
    MTLCompileOptions *o = [[MTLCompileOptions allocWithZone:zone] init];
    o.fastMathEnabled = bnm_fast_math;
    return o;
}
@end

static NSString *read_source_file(void) {
    FILE *f = fopen(bnm_source_path(), "rb");
    NSMutableData *d = [NSMutableData data];
    char buf[4096];
    size_t n;
    if (!f) return nil;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) [d appendBytes:buf length:n];
    fclose(f);
    return [[[NSString alloc] initWithData:d encoding:NSUTF8StringEncoding] autorelease];
}

@implementation BNMDevice
- (NSString *)name { return @"Metal API stand-in (tests/metal)"; }
- (BOOL)hasUnifiedMemory { return YES; }
- (NSUInteger)maxBufferLength { return (NSUInteger)1 << 32; }
- (id<MTLCommandQueue>)newCommandQueue { return [[BNMQueue alloc] init]; }
- (id<MTLLibrary>)newLibraryWithSource:(NSString *)source options:(MTLCompileOptions *)options error:(NSError **)error {
    NSString *expected = read_source_file();
    BNMLibrary *lib;
    last_fast_math = options ? options.fastMathEnabled : 1;
    if (should_fail("library") || !expected || ![source isEqualToString:expected]) {
        if (error)
            *error = make_error(expected ? @"program_source:1:1: error: the source is not the bitnet.metal the emulated kernels were built from"
                                         : @"the stand-in cannot read bitnet.metal");
        return nil;
    }
    lib = [[BNMLibrary alloc] init];
    lib->source = [source copy];
    return lib;
}
- (id<MTLComputePipelineState>)newComputePipelineStateWithFunction:(id<MTLFunction>)computeFunction error:(NSError **)error {
    BNMPipeline *p;
    if (!computeFunction) {
        if (error) *error = make_error(@"no function");
        return nil;
    }
    p = [[BNMPipeline alloc] init];
    snprintf(p->kernel, sizeof p->kernel, "%s", [[computeFunction name] UTF8String]);
    return p;
}
- (BNMBuffer *)bufferOver:(void *)p length:(NSUInteger)n owned:(BOOL)owned {
    BNMBuffer *b = [[BNMBuffer alloc] init];
    b->dev = self;
    b->bytes = p;
    b->len = n;
    b->owned = owned;
    return b;
}
- (id<MTLBuffer>)newBufferWithLength:(NSUInteger)length options:(MTLResourceOptions)options {
    void *p;
    (void)options;
    if (should_fail("newBufferWithLength") || !length) return nil;
    p = calloc(1, length); /* Metal zero-fills */
    return p ? [self bufferOver:p length:length owned:YES] : nil;
}
- (id<MTLBuffer>)newBufferWithBytes:(const void *)pointer length:(NSUInteger)length options:(MTLResourceOptions)options {
    void *p;
    (void)options;
    if (should_fail("newBufferWithBytes") || !length) return nil;
    p = malloc(length);
    if (!p) return nil;
    memcpy(p, pointer, length);
    return [self bufferOver:p length:length owned:YES];
}
- (id<MTLBuffer>)newBufferWithBytesNoCopy:(void *)pointer
                                   length:(NSUInteger)length
                                  options:(MTLResourceOptions)options
                              deallocator:(void (^)(void *pointer, NSUInteger length))deallocator {
    (void)options;
    if (should_fail("newBufferWithBytesNoCopy") || deallocator || !length || (uintptr_t)pointer % BNM_PAGE || length % BNM_PAGE) return nil;
    return [self bufferOver:pointer length:length owned:NO];
}
@end

id<MTLDevice> MTLCreateSystemDefaultDevice(void) {
    if (should_fail("device")) return nil;
    return [[BNMDevice alloc] init];
}
