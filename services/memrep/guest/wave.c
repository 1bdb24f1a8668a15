/*
 * /init of memrep's test guest. It counts iterations and, at every iteration, rewrites a wave of
 * pages of a memory region with a pattern derived from (page index, iteration). A replica taken
 * at an instruction boundary therefore has a checkable shape: every page carries the stamp of the
 * last iteration that wrote it, the control page carries the counter, and the checker
 * (services/memrep/src/guest_check.rs) recomputes which stamp each page must have.
 *
 * Page layout (4096 bytes, little-endian u64 words):
 *   word 0: WAVE_MAGIC ^ index      word 1: index     word 2: stamp (iteration)
 *   word 3..511: fill(index, stamp, word)
 * Control page: word 0: CTRL_MAGIC, word 1: region pages, word 2: wave pages, word 3: counter,
 *   word 4: CTRL_MAGIC ^ counter (written last: a control page is complete when it checks).
 * Parameters come from the kernel command line (the kernel hands `k=v` words to init as
 * environment): wave_region=<pages> wave_pages=<pages per iteration> wave_sleep_us=<us>.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define WORDS (PAGE / 8)

static uint64_t magic(uint64_t salt) {
    /* Built at run time so the constant is not in the binary's own pages. */
    volatile uint64_t hi = 0x48595048u, lo = 0x57415645u; /* "HYPH" "WAVE" */
    return ((hi << 32) | lo) ^ (salt * 0x9E3779B97F4A7C15ull);
}

static uint64_t fill(uint64_t index, uint64_t stamp, uint64_t word) {
    uint64_t x = index * 0x9E3779B97F4A7C15ull ^ stamp * 0xC2B2AE3D27D4EB4Full ^ word;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return x;
}

static unsigned long param(const char *name, unsigned long dflt) {
    const char *v = getenv(name);
    if (!v || !*v) return dflt;
    return strtoul(v, NULL, 10);
}

int main(void) {
    mkdir("/dev", 0755);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    int fd = open("/dev/console", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    unsigned long region = param("wave_region", 2048);
    unsigned long wave = param("wave_pages", 32);
    unsigned long sleep_us = param("wave_sleep_us", 2000);
    if (wave == 0 || wave > region) wave = region;

    uint64_t *mem = mmap(NULL, (region + 1) * PAGE, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (mem == MAP_FAILED) {
        printf("wave: mmap failed\n");
        for (;;) pause();
    }
    mlock(mem, (region + 1) * PAGE);
    uint64_t *ctrl = mem + region * WORDS;
    uint64_t wave_magic = magic(1), ctrl_magic = magic(2);

    /* Iteration 0 writes every page, so every page has a defined stamp from then on. */
    for (uint64_t counter = 0;; counter++) {
        uint64_t first = counter == 0 ? 0 : ((counter - 1) * wave) % region;
        uint64_t count = counter == 0 ? region : wave;
        for (uint64_t k = 0; k < count; k++) {
            uint64_t i = (first + k) % region;
            uint64_t *p = mem + i * WORDS;
            /* Mark the page as being rewritten first, so a snapshot inside this loop shows
             * the old stamp cleared rather than a page that silently mixes two stamps. */
            p[0] = 0;
            for (uint64_t w = 3; w < WORDS; w++) p[w] = fill(i, counter, w);
            p[1] = i;
            p[2] = counter;
            __atomic_store_n(&p[0], wave_magic ^ i, __ATOMIC_RELEASE);
        }
        ctrl[4] = 0;
        ctrl[0] = ctrl_magic;
        ctrl[1] = region;
        ctrl[2] = wave;
        ctrl[3] = counter;
        __atomic_store_n(&ctrl[4], ctrl_magic ^ counter, __ATOMIC_RELEASE);
        if (counter % 100 == 0) printf("wave counter=%llu\n", (unsigned long long)counter);
        if (sleep_us) {
            struct timespec ts = {sleep_us / 1000000, (sleep_us % 1000000) * 1000};
            nanosleep(&ts, NULL);
        }
    }
}
