/* cpuid_mask.c: make this process (and its children) see an x86 CPU with fewer instruction-set
 * extensions than it has, so that every library that picks its kernels from CPUID (XNNPACK in
 * LiteRT, MLAS in onnxruntime, oneDNN in TensorFlow and PyTorch, PyTorch's own dispatch) runs the
 * code paths it would run on that smaller CPU. Loaded with LD_PRELOAD by tfseg.bench.isa.
 *
 * How: Linux's CPUID faulting (arch_prctl(ARCH_SET_CPUID, 0), CPU flag "cpuid_fault") turns every
 * CPUID instruction of the thread into a SIGSEGV. The SIGSEGV handler switches faulting off for
 * one real CPUID (so APIC IDs and cache leaves are those of the CPU asked), clears the bits named
 * in TFSEG_CPUID_MASK, writes the answer into the registers and steps over the instruction. Other
 * SIGSEGVs go to whatever handler the program installs (sigaction / signal for SIGSEGV are
 * intercepted and remembered, so Python's faulthandler and the like keep working).
 *
 * TFSEG_CPUID_MASK: comma-separated "LEAF.SUBLEAF.REGISTER=BITS" (hex leaf, decimal sub-leaf,
 * register eax/ebx/ecx/edx, hex bits to clear), e.g. "7.0.ebx=0xd0230000". It does not change the
 * hardware: an instruction the program runs anyway still executes. The thread setting is inherited
 * by new threads and reset by execve, where LD_PRELOAD loads this file again.
 *
 * Errors: without CPUID faulting (an older CPU or kernel, some hypervisors) or with a malformed
 * mask, the process prints the reason and exits with status 3 before main() runs. */
#define _GNU_SOURCE
#include <cpuid.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef ARCH_SET_CPUID
#define ARCH_SET_CPUID 0x1012
#endif

#define MAX_MASKS 32

/* the leaves whose answer depends on the sub-leaf in ECX; every other leaf ignores ECX, which
 * callers often leave holding garbage, so a mask of such a leaf applies whatever ECX holds */
static const unsigned subleaf_leaves[] = {0x4, 0x7, 0xb, 0xd, 0xf, 0x10, 0x12, 0x14, 0x17, 0x18,
                                          0x1b, 0x1d, 0x1e, 0x1f, 0x20, 0x23, 0x24, 0x8000001d,
                                          0x80000020, 0x80000026};

static int has_subleaves(unsigned leaf) {
    for (unsigned k = 0; k < sizeof subleaf_leaves / sizeof subleaf_leaves[0]; k++)
        if (subleaf_leaves[k] == leaf) return 1;
    return 0;
}

struct mask { unsigned leaf, sub, reg, bits; };
static struct mask masks[MAX_MASKS];
static int n_masks;

static struct sigaction chained;       /* the program's own SIGSEGV handler */
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);

static void fail(const char *why) {
    fprintf(stderr, "cpuid_mask: %s\n", why);
    _exit(3);
}

static int parse_masks(const char *text) {
    while (text && *text) {
        char reg[2] = {0};
        unsigned leaf, sub, bits;
        int used = 0;
        if (n_masks == MAX_MASKS) return 0;
        if (sscanf(text, "%x.%u.e%1[a-d]x=%x%n", &leaf, &sub, reg, &bits, &used) != 4 || !used)
            return 0;
        if (strlen(reg) != 1 || (sub && !has_subleaves(leaf))) return 0;
        masks[n_masks++] = (struct mask){leaf, sub, (unsigned)(reg[0] - 'a'), bits};
        text += used;
        if (*text == ',') text++;
        else if (*text) return 0;
    }
    return 1;
}

/* CPUID's real answer for this thread's CPU (faulting off for the one instruction), with the
 * masked bits cleared: APIC IDs, cache and topology leaves stay those of the CPU asked */
static void answer(unsigned leaf, unsigned sub, unsigned long long out[4]) {
    unsigned r[4];
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
    for (int m = 0; m < n_masks; m++)
        if (masks[m].leaf == leaf && (masks[m].sub == sub || !has_subleaves(leaf)))
            r[masks[m].reg] &= ~masks[m].bits;
    for (int k = 0; k < 4; k++) out[k] = r[k];
}

static void on_segv(int sig, siginfo_t *info, void *context) {
    ucontext_t *uc = context;
    greg_t *g = uc->uc_mcontext.gregs;
    /* a faulting CPUID arrives as a general-protection fault: si_code SI_KERNEL */
    if (info->si_code == SI_KERNEL) {
        const unsigned char *ip = (const unsigned char *)g[REG_RIP];
        if (ip[0] == 0x0f && ip[1] == 0xa2) {
            unsigned long long out[4];
            answer((unsigned)g[REG_RAX], (unsigned)g[REG_RCX], out);
            g[REG_RAX] = out[0];
            g[REG_RBX] = out[1];
            g[REG_RCX] = out[2];
            g[REG_RDX] = out[3];
            g[REG_RIP] += 2;
            return;
        }
    }
    int sent = info->si_code <= 0; /* kill(), raise(), sigqueue(): not a fault */
    if (chained.sa_flags & SA_SIGINFO) {
        chained.sa_sigaction(sig, info, context);
    } else if (chained.sa_handler != SIG_IGN && chained.sa_handler != SIG_DFL) {
        chained.sa_handler(sig);
    } else if (!(sent && chained.sa_handler == SIG_IGN)) {
        /* the default action: a fault happens again once this returns, now without this
         * handler; a signal sent by a process is sent again */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        real_sigaction(SIGSEGV, &dfl, NULL);
        if (sent) raise(SIGSEGV);
    }
}

/* SIGSEGV handlers of the program are remembered and called for faults that are not CPUID */
int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    if (!real_sigaction) real_sigaction = dlsym(RTLD_NEXT, "sigaction");
    if (sig != SIGSEGV || !n_masks) return real_sigaction(sig, act, old);
    if (old) *old = chained;
    if (act) chained = *act;
    return 0;
}

sighandler_t signal(int sig, sighandler_t handler) {
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    act.sa_flags = SA_RESTART;
    sigemptyset(&act.sa_mask);
    if (sigaction(sig, &act, &old) != 0) return SIG_ERR;
    return old.sa_handler;
}

__attribute__((constructor)) static void start(void) {
    const char *text = getenv("TFSEG_CPUID_MASK");
    real_sigaction = dlsym(RTLD_NEXT, "sigaction");
    if (!text || !*text) return;
    if (!parse_masks(text)) fail("malformed TFSEG_CPUID_MASK (expected LEAF.SUB.REG=BITS,...)");
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_sigaction = on_segv;
    act.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&act.sa_mask);
    chained.sa_handler = SIG_DFL;
    if (real_sigaction(SIGSEGV, &act, NULL) != 0) fail("cannot install the SIGSEGV handler");
    if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0)
        fail("this CPU or kernel has no CPUID faulting (arch_prctl ARCH_SET_CPUID; flag cpuid_fault)");
}
