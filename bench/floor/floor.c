/*
 * The physical floor of a Landlock launcher, for `just bench`: the same
 * sandbox `landgate exec` builds (Landlock ABI 7 ruleset, the MPTCP /
 * io_uring / TCP Fast Open seccomp filter, no_new_privs), made with bare
 * syscalls and nothing else, then execve. Whatever a launcher does beyond
 * this is its own overhead.
 *
 *   floor [-r PATH]... [-w PATH]... [-B] [-b PORT]... [-C] [-c PORT]...
 *         [-s] [-a] [-i] [-l] [-t] -- CMD [ARG]...
 *
 * -r: read + execute beneath PATH (landgate's fs.rx); -w: every right
 * (fs.rw); -B/-C: handle TCP bind/connect (-b/-c imply them), -b/-c: the
 * ports allowed, as given (the bench passes landgate's effective lists, the
 * ephemeral 0 included). -s/-a: scope signals/abstract UNIX sockets. -i:
 * leave io_uring alone (allow_io_uring). -l: log the command's denials
 * (log_denials; otherwise the kernel's default, none after this exec).
 * -t: time the sandbox set-up (opening the paths to restrict_self) and
 * print "TOTAL PATHS LANDLOCK SECCOMP" in nanoseconds instead of running
 * CMD: PATHS is opening them (O_CLOEXEC descriptors, left for execve
 * to close, as landgate does), LANDLOCK the Landlock syscalls and
 * no_new_privs, SECCOMP building and attaching the filter.
 *
 * x86_64 only; built with `musl-gcc -static -O2` by the bench recipe.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* linux/landlock.h, ABI 7 (the build host's headers may be older). */
#define FS_EXECUTE (1ULL << 0)
#define FS_WRITE_FILE (1ULL << 1)
#define FS_READ_FILE (1ULL << 2)
#define FS_READ_DIR (1ULL << 3)
#define FS_ALL ((1ULL << 16) - 1) /* execute .. ioctl_dev */
#define FS_TRUNCATE (1ULL << 14)
#define FS_IOCTL_DEV (1ULL << 15)
#define FS_FILE (FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV)
#define FS_READ (FS_EXECUTE | FS_READ_FILE | FS_READ_DIR)
#define NET_BIND (1ULL << 0)
#define NET_CONNECT (1ULL << 1)
#define SCOPE_ABSTRACT_UNIX 1ULL
#define SCOPE_SIGNAL 2ULL
#define RULE_PATH_BENEATH 1
#define RULE_NET_PORT 2
#define RESTRICT_SELF_LOG_SAME_EXEC_OFF 1U
#define RESTRICT_SELF_LOG_NEW_EXEC_ON 2U

struct ruleset_attr { uint64_t fs, net, scoped; };
struct path_beneath { uint64_t access; int32_t fd; } __attribute__((packed));
struct net_port { uint64_t access, port; };

/* linux/filter.h, linux/seccomp.h, linux/audit.h */
struct sock_filter { uint16_t code; uint8_t jt, jf; uint32_t k; };
struct sock_fprog { unsigned short len; struct sock_filter *filter; };
#define LD_W_ABS 0x20
#define JEQ_K 0x15
#define JSET_K 0x45
#define RET_K 0x06
#define RET_ALLOW 0x7fff0000U
#define RET_KILL 0x80000000U
#define RET_ERRNO(e) (0x00050000U | (e))
#define ARCH_X86_64 0xc000003eU
#define X32 0x40000000U
#define SECCOMP_SET_MODE_FILTER 1

#define MAX_RULES 64
#define MAX_PORTS 64

static void die(const char *what) {
    dprintf(2, "floor: %s: %s\n", what, strerror(errno));
    _exit(123);
}

static struct sock_filter prog[64];
static int len;

static void emit(uint16_t code, uint8_t jt, uint8_t jf, uint32_t k) {
    prog[len++] = (struct sock_filter){code, jt, jf, k};
}

/* One program: socket(.., IPPROTO_MPTCP) -> EPROTONOSUPPORT; io_uring_* ->
 * ENOSYS; with connect rules, send{to,msg,mmsg}(MSG_FASTOPEN) -> EOPNOTSUPP.
 * Native and x32 numbers; any other architecture is killed. */
static void build_filter(int fastopen, int io_uring) {
    static const uint32_t uring[] = {425, 426, 427, 425 | X32, 426 | X32, 427 | X32};
    /* syscall, index of its flags argument */
    static const uint32_t sends[][2] = {
        {44, 3}, {46, 2}, {307, 3}, {44 | X32, 3}, {518 | X32, 2}, {538 | X32, 3}};
    emit(LD_W_ABS, 0, 0, 4);
    emit(JEQ_K, 1, 0, ARCH_X86_64);
    emit(RET_K, 0, 0, RET_KILL);
    emit(LD_W_ABS, 0, 0, 0);
    for (int i = 0; i < 2; i++) {         /* socket: arg 2 == 262 */
        emit(JEQ_K, 0, 3, i ? 41 | X32 : 41);
        emit(LD_W_ABS, 0, 0, 16 + 8 * 2);
        emit(JEQ_K, 0, 1, 262);
        emit(RET_K, 0, 0, RET_ERRNO(93));
    }
    if (io_uring)
        for (int i = 0; i < 6; i++) {
            emit(JEQ_K, 0, 1, uring[i]);
            emit(RET_K, 0, 0, RET_ERRNO(38));
        }
    if (fastopen)
        for (int i = 0; i < 6; i++) {
            emit(JEQ_K, 0, 3, sends[i][0]);
            emit(LD_W_ABS, 0, 0, 16 + 8 * sends[i][1]);
            emit(JSET_K, 0, 1, 0x20000000);
            emit(RET_K, 0, 0, RET_ERRNO(95));
        }
    emit(RET_K, 0, 0, RET_ALLOW);
}

/* A socket or send check loads an argument into the accumulator, so when
 * the argument does not match, the next syscall-number compare would read
 * the wrong value: send those misses to the final ALLOW instead. */
static void patch_fallthroughs(void) {
    for (int i = 0; i < len; i++)
        if (prog[i].code == LD_W_ABS && prog[i].k >= 16) {
            /* next: JEQ/JSET with jt=0 (match: the RET errno) jf=1 -> skip RET */
            int test = i + 1;
            prog[test].jt = 0;
            prog[test].jf = (uint8_t)(len - 1 - (test + 1));
        }
}

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
    const char *paths[MAX_RULES];
    uint64_t access[MAX_RULES];
    uint64_t bind[MAX_PORTS], connect[MAX_PORTS];
    int npaths = 0, nbind = 0, nconnect = 0, timing = 0, i = 1;
    int handle_bind = 0, handle_connect = 0, allow_uring = 0, log_new_exec = 0;
    uint64_t scoped = 0;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) { i++; break; }
        if (!strcmp(a, "-t")) { timing = 1; continue; }
        if (!strcmp(a, "-B")) { handle_bind = 1; continue; }
        if (!strcmp(a, "-C")) { handle_connect = 1; continue; }
        if (!strcmp(a, "-s")) { scoped |= SCOPE_SIGNAL; continue; }
        if (!strcmp(a, "-a")) { scoped |= SCOPE_ABSTRACT_UNIX; continue; }
        if (!strcmp(a, "-i")) { allow_uring = 1; continue; }
        if (!strcmp(a, "-l")) { log_new_exec = 1; continue; }
        if (i + 1 >= argc || a[0] != '-' || a[2]) { dprintf(2, "floor: usage\n"); return 125; }
        const char *v = argv[++i];
        switch (a[1]) {
        case 'r': paths[npaths] = v; access[npaths++] = FS_READ; break;
        case 'w': paths[npaths] = v; access[npaths++] = FS_ALL; break;
        case 'b': bind[nbind++] = strtoull(v, 0, 10); handle_bind = 1; break;
        case 'c': connect[nconnect++] = strtoull(v, 0, 10); handle_connect = 1; break;
        default: dprintf(2, "floor: usage\n"); return 125;
        }
        if (npaths == MAX_RULES || nbind == MAX_PORTS || nconnect == MAX_PORTS) return 125;
    }
    if (!timing && i >= argc) { dprintf(2, "floor: missing command\n"); return 125; }

    long long start = now_ns(), paths_ns = 0, seccomp_ns = 0;
    struct ruleset_attr attr = {FS_ALL, (handle_bind ? NET_BIND : 0) | (handle_connect ? NET_CONNECT : 0), scoped};
    int ruleset = syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
    if (ruleset < 0) die("landlock_create_ruleset");
    for (int p = 0; p < npaths; p++) {
        /* The raw syscall: musl's open() sets FD_CLOEXEC a second time
         * with fcntl. A directory is asked for first, so that the common
         * case needs no fstat (as landgate does). */
        long long t = now_ns();
        int is_dir = 1;
        int fd = syscall(SYS_openat, AT_FDCWD, paths[p], O_PATH | O_CLOEXEC | O_DIRECTORY);
        if (fd < 0 && errno == ENOTDIR) {
            fd = syscall(SYS_openat, AT_FDCWD, paths[p], O_PATH | O_CLOEXEC);
            struct stat st;
            if (fd >= 0 && fstat(fd, &st)) die(paths[p]);
            is_dir = fd >= 0 && S_ISDIR(st.st_mode);
        }
        if (fd < 0) {
            if (errno == ENOENT || errno == ENOTDIR) continue;
            die(paths[p]);
        }
        paths_ns += now_ns() - t;
        struct path_beneath rule = {access[p], fd};
        if (!is_dir) rule.access &= FS_FILE;
        if (syscall(SYS_landlock_add_rule, ruleset, RULE_PATH_BENEATH, &rule, 0)) die("landlock_add_rule");
        /* Not closed: O_CLOEXEC, and only execve remains (as landgate). */
    }
    for (int n = 0; n < nbind + nconnect; n++) {
        struct net_port rule = n < nbind ? (struct net_port){NET_BIND, bind[n]}
                                         : (struct net_port){NET_CONNECT, connect[n - nbind]};
        if (syscall(SYS_landlock_add_rule, ruleset, RULE_NET_PORT, &rule, 0)) die("landlock_add_rule");
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) die("no_new_privs");
    if (handle_bind || handle_connect) {
        long long t = now_ns();
        build_filter(handle_connect, !allow_uring);
        patch_fallthroughs();
        struct sock_fprog fprog = {(unsigned short)len, prog};
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog)) die("seccomp");
        seccomp_ns = now_ns() - t;
    }
    unsigned flags = log_new_exec ? RESTRICT_SELF_LOG_NEW_EXEC_ON : RESTRICT_SELF_LOG_SAME_EXEC_OFF;
    if (syscall(SYS_landlock_restrict_self, ruleset, flags)) die("landlock_restrict_self");
    if (timing) {
        long long total = now_ns() - start;
        printf("%lld %lld %lld %lld\n", total, paths_ns, total - paths_ns - seccomp_ns, seccomp_ns);
        return 0;
    }
    extern char **environ;
    execve(argv[i], argv + i, environ);
    die(argv[i]);
}
