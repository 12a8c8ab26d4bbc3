/*
 * The file-open micro loop of `just bench`: open + close PATH N times,
 * print the mean nanoseconds per pair. Run directly and under
 * `landgate exec`; the ratio is Landlock's tax on path walks.
 *
 *   openloop PATH N
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: openloop PATH N\n");
        return 2;
    }
    long n = atol(argv[2]);
    long long start = now_ns();
    for (long i = 0; i < n; i++) {
        int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            perror(argv[1]);
            return 1;
        }
        close(fd);
    }
    printf("%.1f\n", (double)(now_ns() - start) / n);
    return 0;
}
