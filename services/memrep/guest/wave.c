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
 *
 * With wave_disk=1 the program also uses the VM's disk (/dev/vda, virtio-blk; the modules are
 * in the initramfs under /lib/modules, loaded in dependency order). Disk blocks 0..15 (4096
 * bytes) form a ring: at iteration c, block c % 16 gets DISK_MAGIC ^ block, c, DISK_MAGIC ^ c ^
 * block, written with O_DIRECT and fdatasync. Before that, block (c - 1) % 16 is read back and
 * must hold c - 1, the value the program's RAM says it wrote last: after a failover this proves
 * that the resumed disk and RAM come from the same moment (else "wave disk MISMATCH").
 * Block 16 holds a seed text put there when the image was made; it is printed once
 * ("wave disk seed=..."), which shows the image the VM booted with. Every 100 iterations:
 * "wave disk counter=<c> mismatches=<n>".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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

#define RING 16

/* The virtio-blk driver and what it needs, in dependency order (build.sh copies them). */
static const char *const MODULES[] = {"virtio_ring.ko", "virtio.ko", "virtio_pci_modern_dev.ko",
                                      "virtio_pci_legacy_dev.ko", "virtio_pci.ko", "virtio_blk.ko"};

static int open_disk(void) {
    char path[128];
    for (unsigned i = 0; i < sizeof MODULES / sizeof MODULES[0]; i++) {
        snprintf(path, sizeof path, "/lib/modules/%s", MODULES[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue; /* built in, or not shipped */
        if (syscall(SYS_finit_module, fd, "", 0) != 0)
            printf("wave disk: loading %s failed: %s\n", path, strerror(errno));
        close(fd);
    }
    for (int tries = 0; tries < 200; tries++) {
        int fd = open("/dev/vda", O_RDWR | O_DIRECT | O_CLOEXEC);
        if (fd >= 0) return fd;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    printf("wave disk: no /dev/vda\n");
    return -1;
}

static int block_holds(const uint64_t *b, uint64_t block, uint64_t c, uint64_t disk_magic) {
    return b[0] == (disk_magic ^ block) && b[1] == c && b[2] == (disk_magic ^ c ^ block);
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
    uint64_t wave_magic = magic(1), ctrl_magic = magic(2), disk_magic = magic(3);

    int disk = param("wave_disk", 0) ? open_disk() : -1;
    uint64_t *dbuf = NULL;
    uint64_t disk_last = 0, disk_have_last = 0, mismatches = 0;
    if (disk >= 0) {
        dbuf = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                    -1, 0);
        if (dbuf == MAP_FAILED || pread(disk, dbuf, PAGE, RING * PAGE) != PAGE) {
            printf("wave disk: cannot read the seed block\n");
            disk = -1;
        } else {
            char seed[65];
            memcpy(seed, dbuf, 64);
            seed[64] = 0;
            seed[strcspn(seed, "\n")] = 0;
            printf("wave disk seed=%s\n", seed);
        }
    }

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
        if (disk >= 0) {
            if (disk_have_last) {
                uint64_t b = disk_last % RING;
                if (pread(disk, dbuf, PAGE, b * PAGE) != PAGE ||
                    !block_holds(dbuf, b, disk_last, disk_magic)) {
                    mismatches++;
                    printf("wave disk MISMATCH ram=%llu disk=%llu\n", (unsigned long long)disk_last,
                           (unsigned long long)dbuf[1]);
                }
            }
            uint64_t b = counter % RING;
            memset(dbuf, 0, PAGE);
            dbuf[0] = disk_magic ^ b;
            dbuf[1] = counter;
            dbuf[2] = disk_magic ^ counter ^ b;
            if (pwrite(disk, dbuf, PAGE, b * PAGE) != PAGE || fdatasync(disk) != 0) {
                printf("wave disk: write failed\n");
            }
            disk_last = counter;
            disk_have_last = 1;
        }
        if (counter % 100 == 0) printf("wave counter=%llu\n", (unsigned long long)counter);
        if (disk >= 0 && counter % 100 == 0)
            printf("wave disk counter=%llu mismatches=%llu\n", (unsigned long long)counter,
                   (unsigned long long)mismatches);
        if (sleep_us) {
            struct timespec ts = {sleep_us / 1000000, (sleep_us % 1000000) * 1000};
            nanosleep(&ts, NULL);
        }
    }
}
