// The kernels of src/metal/bitnet.metal compiled as C++ (through
// tests/metal/metal_stdlib), and the runtime that executes a dispatch:
// every thread of a threadgroup is a fiber that runs the kernel for real
// (see metal_stdlib for the rules it follows). Tests only.
#include "../../src/metal/bitnet.metal"

#include "emulator.h"
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <string>
#include <vector>
#include <ucontext.h>

#ifndef BNM_SOURCE
#define BNM_SOURCE "src/metal/bitnet.metal"
#endif

// Kernels that test the emulator itself (test_metal_kernels: "emulator").
kernel void bnm_test_collectives(device const int *in [[buffer(0)]], device int *out [[buffer(1)]],
                                 uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                                 uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {
    threadgroup int shared[256];
    int v = in[tid], s = v;
    for (ushort m = 16; m > 0; m /= 2) s += simd_shuffle_xor(s, m);
    out[tid * 6 + 0] = simd_sum(v);
    out[tid * 6 + 1] = s;
    out[tid * 6 + 2] = simd_shuffle(v, ushort((lane + 1) % 32));
    out[tid * 6 + 3] = simd_broadcast(v, ushort(3));
    out[tid * 6 + 4] = simd_max(v);
    shared[tid] = v + int(tg.x) + int(sg);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    out[tid * 6 + 5] = shared[(tid + 1) % 256];
}
// The last step of bnm_test_collectives without its barrier: a race the emulation must expose.
kernel void bnm_test_race(device const int *in [[buffer(0)]], device int *out [[buffer(1)]],
                          uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                          uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {
    threadgroup int shared[256];
    shared[tid] = in[tid];
    out[tid] = shared[(tid + 1) % 256];
}
// A barrier inside a branch some threads skip: undefined on a GPU, an error here.
kernel void bnm_test_divergent(device const int *in [[buffer(0)]], device int *out [[buffer(1)]],
                               uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                               uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {
    if (in[tid] > 0) threadgroup_barrier(mem_flags::mem_threadgroup);
    out[tid] = 1;
}
// Lanes of one simdgroup calling different SIMD-group functions: an error here.
kernel void bnm_test_mixed(device const int *in [[buffer(0)]], device int *out [[buffer(1)]],
                           uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                           uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {
    out[tid] = lane < 16 ? simd_sum(in[tid]) : simd_max(in[tid]);
}

namespace bnm {
typedef void (*entry_fn)(void *const *bufs, const builtins &b);
struct kernel_entry {
    const char *name;
    int n_buffers;
    entry_fn entry;
};
#define BNM_KERNEL(f) {#f, n_buffers(f), [](void *const *b, const builtins &x) { invoke(f, b, x); }}
// Every kernel of bitnet.metal (test_metal_kernels checks the source has no other).
static const kernel_entry kernels[] = {BNM_KERNEL(bn_embed), BNM_KERNEL(bn_rows), BNM_KERNEL(bn_tmatmul),
                                       BNM_KERNEL(bn_rope_kv), BNM_KERNEL(bn_attention), BNM_KERNEL(bn_fmatmul)};

static const kernel_entry selftests[] = {BNM_KERNEL(bnm_test_collectives), BNM_KERNEL(bnm_test_race),
                                         BNM_KERNEL(bnm_test_divergent), BNM_KERNEL(bnm_test_mixed)};

static const kernel_entry *find(const char *name) {
    for (const kernel_entry &k : kernels)
        if (std::strcmp(k.name, name) == 0) return &k;
    for (const kernel_entry &k : selftests)
        if (std::strcmp(k.name, name) == 0) return &k;
    return nullptr;
}

enum { SIMD_WIDTH = 32, STACK_BYTES = 256 * 1024 };

// Switching between fibers: on x86-64 a few instructions that save the
// callee-saved registers and swap stacks (ucontext's swapcontext makes a
// system call each time, and a forward pass switches millions of times);
// elsewhere ucontext. AddressSanitizer is told of each switch.
#if defined(__SANITIZE_ADDRESS__)
#define BNM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BNM_ASAN 1
#endif
#endif
#ifdef BNM_ASAN
extern "C" void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
extern "C" void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old, size_t *size_old);
#endif

#if defined(__x86_64__) && !defined(BNM_UCONTEXT)
extern "C" void bnm_switch(void **save_sp, void *to_sp);
__asm__(".text\n"
        ".globl bnm_switch\n"
        ".type bnm_switch, @function\n"
        "bnm_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size bnm_switch, .-bnm_switch\n");
struct fiber {
    void *sp;
};
static void fiber_start(fiber &f, char *stack, void (*entry)()) {
    uintptr_t top = ((uintptr_t)stack + STACK_BYTES) & ~(uintptr_t)15;
    void **p = (void **)top;
    *--p = nullptr;         // entry's return address (it never returns)
    *--p = (void *)entry;   // where bnm_switch's ret goes
    for (int i = 0; i < 6; i++) *--p = nullptr; // rbp rbx r12-r15
    f.sp = p;
}
static void fiber_switch(fiber &from, fiber &to) { bnm_switch(&from.sp, to.sp); }
#else
struct fiber {
    ucontext_t ctx;
};
static void fiber_start(fiber &f, char *stack, void (*entry)()) {
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = stack;
    f.ctx.uc_stack.ss_size = STACK_BYTES;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, entry, 0);
}
static void fiber_switch(fiber &from, fiber &to) { swapcontext(&from.ctx, &to.ctx); }
#endif

struct lane {
    fiber f;
    sync_kind wait;
    value_type type;
    lane_value in, out;
    uint arg;
    bool done;
};

// One threadgroup being run on this host thread.
struct tg_run {
    std::vector<lane> lanes;
    fiber sched;
    entry_fn entry;
    void *const *bufs;
    uint3 tg;
    int current;
#ifdef BNM_ASAN
    const void *sched_bottom; // the scheduler's stack, for AddressSanitizer
    size_t sched_size;
#endif
};

static thread_local tg_run *cur;
struct stack_pool { // one stack per lane, kept for the next dispatch
    std::vector<char *> v;
    ~stack_pool() {
        for (char *p : v) std::free(p);
    }
};
static thread_local stack_pool stacks;
static long long n_threads_run, n_switches; // statistics (single-threaded use in the tests)

// From a lane to the scheduler; `dying`: the lane has returned and is never resumed.
static void to_scheduler(lane &l, bool dying) {
    n_switches++;
#ifdef BNM_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(dying ? nullptr : &fake, cur->sched_bottom, cur->sched_size);
    fiber_switch(l.f, cur->sched);
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
    (void)dying;
    fiber_switch(l.f, cur->sched);
#endif
}

// From the scheduler to lane i.
static void to_lane(tg_run &r, int i) {
    r.current = i;
    n_switches++;
#ifdef BNM_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, stacks.v[i], STACK_BYTES);
    fiber_switch(r.sched, r.lanes[i].f);
    __sanitizer_finish_switch_fiber(fake, &r.sched_bottom, &r.sched_size);
#else
    fiber_switch(r.sched, r.lanes[i].f);
#endif
}

static void lane_main() {
    tg_run *r = cur;
    int i = r->current;
    builtins b;
#ifdef BNM_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &r->sched_bottom, &r->sched_size);
#endif
    b.tg = r->tg;
    b.tid = (uint)i;
    b.sg = (uint)i / SIMD_WIDTH;
    b.lane = (uint)i % SIMD_WIDTH;
    r->entry(r->bufs, b);
    r->lanes[i].done = true;
    to_scheduler(r->lanes[i], true);
    std::abort(); // never resumed
}

static void suspend(lane &l) { to_scheduler(l, false); }

lane_value simd_op(sync_kind kind, value_type type, lane_value v, uint arg) {
    lane &l = cur->lanes[cur->current];
    l.wait = kind;
    l.type = type;
    l.in = v;
    l.arg = arg;
    suspend(l);
    return l.out;
}

void barrier() {
    lane &l = cur->lanes[cur->current];
    l.wait = SYNC_BARRIER;
    suspend(l);
}

static const char *kind_name(sync_kind k) {
    switch (k) {
    case SYNC_BARRIER: return "threadgroup_barrier";
    case SYNC_SUM: return "simd_sum";
    case SYNC_MAX: return "simd_max";
    case SYNC_SHUFFLE: return "simd_shuffle";
    case SYNC_SHUFFLE_XOR: return "simd_shuffle_xor";
    case SYNC_BROADCAST: return "simd_broadcast";
    default: return "nothing";
    }
}

static lane_value combine(sync_kind k, value_type t, lane_value a, lane_value b) {
    lane_value r;
    if (t == V_FLOAT) r.f = k == SYNC_SUM ? a.f + b.f : (a.f < b.f ? b.f : a.f);
    else if (t == V_INT) r.i = k == SYNC_SUM ? (int32_t)((uint32_t)a.i + (uint32_t)b.i) : (a.i < b.i ? b.i : a.i);
    else r.u = k == SYNC_SUM ? a.u + b.u : (a.u < b.u ? b.u : a.u);
    return r;
}

// Completes the SIMD-group call of the active (not returned) lanes [lo, hi).
static std::string resolve_simd(tg_run &r, int lo, int hi) {
    std::vector<int> act;
    for (int i = lo; i < hi; i++)
        if (!r.lanes[i].done) act.push_back(i);
    lane &first = r.lanes[act[0]];
    for (int i : act)
        if (r.lanes[i].wait != first.wait || r.lanes[i].type != first.type)
            return std::string("simdgroup ") + std::to_string(lo / SIMD_WIDTH) + ": lanes call " +
                   kind_name(first.wait) + " and " + kind_name(r.lanes[i].wait) + " at once";
    if (first.wait == SYNC_SUM || first.wait == SYNC_MAX) {
        std::vector<lane_value> v;
        for (int i : act) v.push_back(r.lanes[i].in);
        while (v.size() > 1) { // a tree of pairs
            std::vector<lane_value> next;
            for (size_t k = 0; k + 1 < v.size(); k += 2) next.push_back(combine(first.wait, first.type, v[k], v[k + 1]));
            if (v.size() % 2) next.push_back(v.back());
            v.swap(next);
        }
        for (int i : act) r.lanes[i].out = v[0];
    } else {
        for (int i : act) {
            uint src = first.wait == SYNC_SHUFFLE_XOR ? ((uint)(i - lo) ^ r.lanes[i].arg) : r.lanes[i].arg;
            if (first.wait == SYNC_BROADCAST && r.lanes[i].arg != first.arg)
                return "simd_broadcast: lanes name different source lanes";
            if (src >= SIMD_WIDTH || lo + (int)src >= hi || r.lanes[lo + src].done)
                return std::string(kind_name(first.wait)) + ": lane " + std::to_string(i - lo) + " reads lane " +
                       std::to_string(src) + ", which is not active";
            r.lanes[i].out = r.lanes[lo + src].in;
        }
    }
    for (int i : act) r.lanes[i].wait = SYNC_NONE;
    return "";
}

// Runs threadgroup r.tg of n threads to the end; an error message, or "".
static std::string run_threadgroup(tg_run &r, int n) {
    r.lanes.assign(n, lane());
    while ((int)stacks.v.size() < n) stacks.v.push_back((char *)std::malloc(STACK_BYTES));
    for (int i = 0; i < n; i++) {
        lane &l = r.lanes[i];
        l.wait = SYNC_NONE;
        l.done = false;
        fiber_start(l.f, stacks.v[i], lane_main);
    }
    n_threads_run += n;
    for (int round = 0;; round++) {
        for (int k = 0; k < n; k++) { // run every runnable fiber to its next stop, in alternating order
            int i = round % 2 ? n - 1 - k : k;
            if (r.lanes[i].done || r.lanes[i].wait != SYNC_NONE) continue;
            to_lane(r, i);
        }
        bool progress = false;
        int n_done = 0, n_barrier = 0;
        for (int lo = 0; lo < n; lo += SIMD_WIDTH) {
            int hi = lo + SIMD_WIDTH < n ? lo + SIMD_WIDTH : n, active = 0, at_simd = 0, at_barrier = 0;
            for (int i = lo; i < hi; i++) {
                if (r.lanes[i].done) continue;
                active++;
                at_simd += r.lanes[i].wait != SYNC_BARRIER;
                at_barrier += r.lanes[i].wait == SYNC_BARRIER;
            }
            if (at_simd && at_barrier)
                return "simdgroup " + std::to_string(lo / SIMD_WIDTH) + ": some lanes wait at a threadgroup_barrier, others at a SIMD-group function";
            if (active && at_simd == active) {
                std::string e = resolve_simd(r, lo, hi);
                if (!e.empty()) return e;
                progress = true;
            }
        }
        if (progress) continue;
        for (lane &l : r.lanes) {
            n_done += l.done;
            n_barrier += !l.done && l.wait == SYNC_BARRIER;
        }
        if (n_done == n) return "";
        if (n_barrier + n_done == n) {
            if (n_done)
                return "threadgroup_barrier: " + std::to_string(n_done) + " of " + std::to_string(n) +
                       " threads returned without reaching it";
            for (lane &l : r.lanes) l.wait = SYNC_NONE;
            continue;
        }
        return "deadlock";
    }
}
} // namespace bnm

// ---- rounding ties (emulator.h) ------------------------------------------------
namespace bnm {
static const int N_TIES = 4;
static bnm_tie ties[N_TIES];
static int n_ties, quant_dispatches, flip_armed;
static bnm_tie flip;

// After a bn_rows dispatch: record its closest ties, and flip the armed one.
static void observe_rows(void *const *bufs, unsigned n_rows) {
    const bn_margs &a = *(const bn_margs *)bufs[0];
    const float *y = (const float *)bufs[4], *scale = (const float *)bufs[6];
    int8_t *xq = (int8_t *)bufs[5];
    if (!a.quant) return;
    for (unsigned t = 0; t < n_rows; t++)
        for (int i = 0; i < a.cols; i++) {
            float v = y[(size_t)t * a.cols + i] * scale[t];
            bnm_tie c = {quant_dispatches, (int)t, i, v, std::fabs(v - std::floor(v) - 0.5f)};
            int k;
            if (n_ties < N_TIES) k = n_ties++;
            else if (c.distance < ties[N_TIES - 1].distance) k = N_TIES - 1;
            else continue;
            ties[k] = c;
            for (; k > 0 && ties[k].distance < ties[k - 1].distance; k--) std::swap(ties[k], ties[k - 1]);
        }
    if (flip_armed && flip.dispatch == quant_dispatches) {
        int8_t &q = xq[(size_t)flip.row * a.cols + flip.col];
        float other = (float)q == std::floor(flip.v) ? std::floor(flip.v) + 1.0f : std::floor(flip.v);
        q = (int8_t)(other > 127.0f ? 127.0f : other < -128.0f ? -128.0f : other);
        flip_armed = 0; // once
    }
    quant_dispatches++;
}
} // namespace bnm

extern "C" void bnm_ties_reset(void) {
    bnm::n_ties = 0;
    bnm::quant_dispatches = 0;
}

extern "C" int bnm_ties_closest(int k, bnm_tie *out) {
    if (k < 0 || k >= bnm::n_ties) return 0;
    *out = bnm::ties[k];
    return 1;
}

extern "C" void bnm_ties_flip(const bnm_tie *tie) {
    bnm::flip_armed = tie != nullptr;
    if (tie) bnm::flip = *tie;
}

extern "C" int bnm_kernel_buffers(const char *name) {
    const bnm::kernel_entry *k = bnm::find(name);
    return k ? k->n_buffers : -1;
}

extern "C" int bnm_dispatch(const char *name, void *const *bufs, int n_bufs, const unsigned groups[3],
                            const unsigned threads[3], char *err, size_t err_len) {
    const bnm::kernel_entry *k = bnm::find(name);
    unsigned n = threads[0] * threads[1] * threads[2], x, y, z;
    if (!k || n_bufs < k->n_buffers || n == 0 || n > 1024) {
        std::snprintf(err, err_len, "%s: %s", name,
                      !k ? "no such kernel" : n_bufs < k->n_buffers ? "fewer buffers bound than the kernel takes" : "bad threadgroup size");
        return -1;
    }
    bnm::tg_run r;
    bnm::tg_run *saved = bnm::cur;
    r.entry = k->entry;
    r.bufs = bufs;
    bnm::cur = &r;
    for (z = 0; z < groups[2]; z++)
        for (y = 0; y < groups[1]; y++)
            for (x = 0; x < groups[0]; x++) {
                r.tg.x = x;
                r.tg.y = y;
                r.tg.z = z;
                std::string e = bnm::run_threadgroup(r, (int)n);
                if (!e.empty()) {
                    std::snprintf(err, err_len, "%s, threadgroup (%u, %u, %u): %s", name, x, y, z, e.c_str());
                    bnm::cur = saved;
                    return -1;
                }
            }
    bnm::cur = saved;
    if (std::strcmp(name, "bn_rows") == 0) bnm::observe_rows(bufs, groups[0]);
    return 0;
}

extern "C" const char *bnm_source_path(void) { return BNM_SOURCE; }

extern "C" void bnm_stats(long long *threads, long long *switches) {
    *threads = bnm::n_threads_run;
    *switches = bnm::n_switches;
}

// bn_margs's size and field offsets, for the copies the host code and the tests make of it.
extern "C" int bnm_margs_layout(size_t *offsets, int max) {
    const size_t off[] = BNM_MARGS_LAYOUT(bn_margs);
    int n = (int)(sizeof off / sizeof off[0]);
    for (int i = 0; i < n && i < max; i++) offsets[i] = off[i];
    return n;
}
