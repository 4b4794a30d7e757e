/* bench-reap OUT COMMAND [ARG ...]: runs COMMAND, waits for it and for
 * every process it started (orphans too: this process is their child
 * subreaper), then appends one line to OUT:
 *
 *   session rc RC user SECONDS sys SECONDS rss KIB written BYTES
 *
 * from getrusage(RUSAGE_CHILDREN): the CPU time of the whole process tree,
 * the peak RSS of its largest process, and the bytes it dirtied in the
 * page cache for files (ru_oublock, the kernel's per-task write_bytes in
 * 512-byte units). The bench (scripts/bench.py) runs every server session
 * under it. Its own stdio is closed once the command runs, so the client
 * sees end of file when the server tree lets go of the pipe, not later. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench-reap OUT COMMAND [ARG ...]\n");
        return 125;
    }
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        perror("bench-reap: PR_SET_CHILD_SUBREAPER");
        return 125;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("bench-reap: fork");
        return 125;
    }
    if (child == 0) {
        execvp(argv[2], argv + 2);
        perror(argv[2]);
        _exit(127);
    }
    int null = open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 3 && null >= 0; fd++)
        dup2(null, fd);
    int rc = 0, status;
    for (;;) {
        pid_t p = wait(&status);
        if (p < 0) {
            if (errno == EINTR)
                continue;
            break; /* ECHILD: the whole tree is gone */
        }
        if (p == child)
            rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    FILE *out = fopen(argv[1], "a");
    if (out == NULL)
        return 125;
    fprintf(out, "session rc %d user %ld.%06ld sys %ld.%06ld rss %ld written %lld\n", rc,
            (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec, (long)ru.ru_stime.tv_sec,
            (long)ru.ru_stime.tv_usec, ru.ru_maxrss, (long long)ru.ru_oublock * 512);
    fclose(out);
    return rc;
}
