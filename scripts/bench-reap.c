/* bench-reap [-r] OUT COMMAND [ARG ...]: runs COMMAND, waits for it and
 * for every process it started (orphans too: this process is their child
 * subreaper), then appends one line to OUT:
 *
 *   session rc RC user SECONDS sys SECONDS rss KIB written BYTES
 *     start T main T end T self SECONDS [busy A-B,C-D,...]
 *
 * from getrusage(RUSAGE_CHILDREN): the CPU time of the whole process tree,
 * the peak RSS of its largest process, and the bytes it dirtied in the
 * page cache for files (ru_oublock, the kernel's per-task write_bytes in
 * 512-byte units). start, main and end are CLOCK_MONOTONIC seconds (the
 * clock of python's time.monotonic): before COMMAND starts, when COMMAND
 * itself exits, when the last process of the tree is gone; self is this
 * process's own CPU (the relay's cost, in no tree figure above).
 *
 * The bench (scripts/bench.py) runs every server session under it with
 * -r, and every client command without. Its own stdio is closed once the
 * command runs, so the client sees end of file when the server tree lets
 * go of the pipe, not later.
 *
 * -r: relay stdin and stdout through this process (splice(2), so the
 * bytes are not copied through user space) and time them: `busy` lists
 * the intervals in which the other side (the client) was waiting on
 * COMMAND: from the session's start to COMMAND's first output, from the
 * other side's last write to COMMAND's next output, and from the first
 * end of file either way to the tree's end. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* When the client waits on the command: see the header. */
struct busy {
    double *at; /* pairs: start, end */
    size_t n, cap;
    int waiting, hungup;
    double since;
};

static void busy_close(struct busy *b, double t)
{
    if (!b->waiting)
        return;
    if (b->n + 2 > b->cap) {
        b->cap = b->cap ? 2 * b->cap : 256;
        b->at = realloc(b->at, b->cap * sizeof *b->at);
        if (b->at == NULL)
            abort();
    }
    b->at[b->n++] = b->since;
    b->at[b->n++] = t;
    b->waiting = 0;
}

static void busy_wait_from(struct busy *b, double t)
{
    b->waiting = 1;
    b->since = t;
}

/* Moves what is readable on `from` to `to`; returns the bytes moved, 0 at
 * end of file, -1 when `to` is gone, -2 when `to` is full (its reader
 * busy: never block on it, or a command writing while we wait to write
 * to it would wait on us). */
static ssize_t move(int from, int to)
{
    static char buf[65536];
    ssize_t n = splice(from, NULL, to, NULL, 1 << 16, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n >= 0)
        return n;
    if (errno == EAGAIN)
        return -2;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    /* Neither end a pipe splice can use (a terminal): copy. */
    n = read(from, buf, sizeof buf);
    if (n <= 0)
        return n;
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(to, buf + off, n - off);
        if (w < 0)
            return -1;
        off += w;
    }
    return n;
}

/* One way of the relay, polled on `from` for input or, while `to` is
 * full, on `to` for room. */
struct way {
    int from, to;
};

static ssize_t step(struct way *w, struct pollfd *p)
{
    ssize_t n = move(w->from, w->to);
    *p = n == -2 ? (struct pollfd){w->to, POLLOUT, 0} : (struct pollfd){w->from, POLLIN, 0};
    return n;
}

/* Relays 0 -> to_child and from_child -> 1 until the command's stdout
 * ends, timing the traffic into `b`. */
static void relay(int to_child, int from_child, struct busy *b)
{
    struct way up = {0, to_child}, down = {from_child, 1};
    struct pollfd p[2] = {{0, POLLIN, 0}, {from_child, POLLIN, 0}};
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        if (p[0].revents) {
            ssize_t n = step(&up, &p[0]);
            double t = now();
            if (n > 0 && !b->hungup) {
                busy_wait_from(b, t);
            } else if (n == 0 || n == -1) {
                /* The client hung up (or the command stopped reading). */
                close(to_child);
                p[0].fd = -1;
                if (!b->hungup) {
                    busy_close(b, t);
                    busy_wait_from(b, t);
                    b->hungup = 1;
                }
            }
        }
        if (p[1].revents) {
            ssize_t n = step(&down, &p[1]);
            double t = now();
            if (n == -2)
                continue;
            busy_close(b, t);
            if (n <= 0) {
                /* The command let go of stdout: it is ending. */
                busy_wait_from(b, t);
                b->hungup = 1;
                return;
            }
            if (b->hungup)
                busy_wait_from(b, t);
        }
    }
}

int main(int argc, char **argv)
{
    int relaying = argc > 1 && strcmp(argv[1], "-r") == 0;
    argv += relaying;
    argc -= relaying;
    if (argc < 3) {
        fprintf(stderr, "usage: bench-reap [-r] OUT COMMAND [ARG ...]\n");
        return 125;
    }
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        perror("bench-reap: PR_SET_CHILD_SUBREAPER");
        return 125;
    }
    int in[2], out[2];
    if (relaying && (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0)) {
        perror("bench-reap: pipe");
        return 125;
    }
    struct busy b = {0};
    double start = now();
    busy_wait_from(&b, start);
    pid_t child = fork();
    if (child < 0) {
        perror("bench-reap: fork");
        return 125;
    }
    if (child == 0) {
        if (relaying && (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0))
            _exit(126);
        execvp(argv[2], argv + 2);
        perror(argv[2]);
        _exit(127);
    }
    int null = open("/dev/null", O_RDWR);
    if (relaying) {
        /* A client gone must not kill the reaper before it reports. */
        signal(SIGPIPE, SIG_IGN);
        close(in[0]);
        close(out[1]);
        dup2(null, 2);
        relay(in[1], out[0], &b);
        close(out[0]);
    }
    for (int fd = 0; fd < 3 && null >= 0; fd++)
        dup2(null, fd);
    int rc = 0, status;
    double main_exit = start;
    for (;;) {
        pid_t p = wait(&status);
        if (p < 0) {
            if (errno == EINTR)
                continue;
            break; /* ECHILD: the whole tree is gone */
        }
        if (p == child) {
            rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            main_exit = now();
        }
    }
    double end = now();
    if (relaying)
        busy_close(&b, end);
    struct rusage ru, self;
    getrusage(RUSAGE_CHILDREN, &ru);
    getrusage(RUSAGE_SELF, &self);
    FILE *f = fopen(argv[1], "a");
    if (f == NULL)
        return 125;
    fprintf(f, "session rc %d user %ld.%06ld sys %ld.%06ld rss %ld written %lld", rc, (long)ru.ru_utime.tv_sec,
            (long)ru.ru_utime.tv_usec, (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec, ru.ru_maxrss,
            (long long)ru.ru_oublock * 512);
    fprintf(f, " start %.6f main %.6f end %.6f self %.6f", start, main_exit, end,
            self.ru_utime.tv_sec + self.ru_stime.tv_sec + (self.ru_utime.tv_usec + self.ru_stime.tv_usec) / 1e6);
    if (relaying) {
        fputs(" busy ", f);
        for (size_t i = 0; i < b.n; i += 2)
            fprintf(f, "%s%.6f-%.6f", i ? "," : "", b.at[i], b.at[i + 1]);
        if (b.n == 0)
            fputs("-", f);
    }
    fputc('\n', f);
    fclose(f);
    return rc;
}
