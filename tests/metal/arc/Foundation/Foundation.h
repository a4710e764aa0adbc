/* Test stand-in for Apple's <Foundation/Foundation.h>, for one purpose: to
   type-check bitnet_metal.m as clang compiles it on a Mac, with automatic
   reference counting (-fobjc-arc -fobjc-runtime=macosx -fsyntax-only), on
   Linux, where no Objective-C runtime with ARC is packaged (Debian has GCC's
   libobjc, which clang drives only without ARC). Nothing is linked against
   it. It declares what bitnet_metal.m and tests/metal/Metal/Metal.h use,
   with Apple's names and types (NSObject, NSString, NSData, NSMutableData,
   NSArray, NSMutableArray, NSError, NSCopying, NSUInteger, BOOL). */
#ifndef BNM_ARC_FOUNDATION_H
#define BNM_ARC_FOUNDATION_H
#include <stddef.h>
#include <stdint.h>

typedef unsigned long NSUInteger;
typedef long NSInteger;
typedef signed char BOOL;
#define YES ((BOOL)1)
#define NO ((BOOL)0)
typedef struct _NSZone NSZone;
typedef NSUInteger NSStringEncoding;
#define NSUTF8StringEncoding ((NSStringEncoding)4)
#define NS_RETURNS_RETAINED __attribute__((ns_returns_retained))
#define nil ((id)0)

@class NSString;

@protocol NSObject
- (BOOL)isEqual:(id)object;
@end

__attribute__((objc_root_class))
@interface NSObject <NSObject> {
    Class isa;
}
+ (instancetype)alloc;
+ (instancetype)allocWithZone:(NSZone *)zone;
+ (instancetype)new;
- (instancetype)init;
- (void)dealloc;
@end

@protocol NSCopying
- (id)copyWithZone:(NSZone *)zone;
@end

@interface NSString : NSObject <NSCopying>
+ (instancetype)stringWithUTF8String:(const char *)s;
- (instancetype)initWithData:(id)data encoding:(NSStringEncoding)encoding;
- (const char *)UTF8String;
@end

@interface NSData : NSObject
- (const void *)bytes;
- (NSUInteger)length;
@end

@interface NSMutableData : NSData
+ (instancetype)dataWithCapacity:(NSUInteger)capacity;
- (void)appendBytes:(const void *)bytes length:(NSUInteger)length;
@end

@interface NSArray : NSObject
- (NSUInteger)count;
@end

@interface NSMutableArray : NSArray
- (void)addObject:(id)object;
- (void)removeObject:(id)object;
@end

@interface NSError : NSObject
- (NSString *)localizedDescription;
@end

#endif
