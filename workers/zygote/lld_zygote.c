/*
 * The lld zygote shim (see workers/src/sandbox/zygote.rs): loaded into lld
 * with LD_PRELOAD, it takes over __libc_start_main, so that it runs after
 * the dynamic loader has mapped and relocated lld and libLLVM (and run
 * their constructors) but before lld's main. There it serves fork requests
 * on the control socket it was given; each child sets itself up as the
 * server's process::run would set up a tool, closes every descriptor of the
 * zygote, and calls the real __libc_start_main with the request's argv and
 * environment: it becomes the process an execve of lld would have made.
 *
 * Without WHEELWRIGHT_ZYGOTE_FD in the environment the shim does nothing.
 *
 * Request (server -> zygote, one SOCK_SEQPACKET message): NUL-terminated
 * fields "Z1", argc, envc, nrlimits, then nrlimits "RESOURCE=VALUE", the
 * cwd (empty: none), argc arguments, envc "KEY=VALUE"; with three to
 * 3 + MAX_CGROUPS descriptors (SCM_RIGHTS): the reply socket, the output
 * pipe, the Landlock ruleset the child restricts itself with (the server's:
 * the shim makes no rules of its own), then the cgroup files (`tasks` or
 * `cgroup.procs`) the child joins by writing 0.
 * Replies (zygote or child -> server, on the reply socket): 8 bytes, a
 * kind and a value (see enum reply). Anything malformed ends the zygote.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_REQUEST (128 * 1024)
#define MAX_FIELDS 4096
#define MAX_CHILDREN 256
#define MAX_CGROUPS 4
#define MAX_PASSED (3 + MAX_CGROUPS)

enum reply {
    REPLY_READY = 1,     /* value: the zygote's pid */
    REPLY_STARTED = 2,   /* value: the child's pid (and process group) */
    REPLY_EXITED = 3,    /* value: the raw waitpid status */
    REPLY_NOT_STARTED = 4, /* value: errno of a failed fork or child setup */
};

typedef int (*start_main_fn)(int (*)(int, char **, char **), int, char **, void (*)(void), void (*)(void),
                             void (*)(void), void *);

static void say(int fd, uint32_t kind, int32_t value) {
    int32_t msg[2] = {(int32_t)kind, value};
    /* MSG_NOSIGNAL: a server gone away is seen at the next poll. */
    (void)send(fd, msg, sizeof msg, MSG_NOSIGNAL);
}

struct request {
    int argc, envc, nrlimits;
    char *fields[MAX_FIELDS];
    int nfields;
};

/* Splits the payload into NUL-terminated fields; 0 on success. */
static int parse(char *buf, size_t len, struct request *req) {
    if (len == 0 || buf[len - 1] != '\0')
        return -1;
    req->nfields = 0;
    for (size_t at = 0; at < len;) {
        if (req->nfields == MAX_FIELDS)
            return -1;
        req->fields[req->nfields++] = buf + at;
        at += strlen(buf + at) + 1;
    }
    if (req->nfields < 4 || strcmp(req->fields[0], "Z1") != 0)
        return -1;
    char *end;
    long counts[3];
    for (int i = 0; i < 3; i++) {
        errno = 0;
        counts[i] = strtol(req->fields[1 + i], &end, 10);
        if (errno || *end || end == req->fields[1 + i] || counts[i] < 0 || counts[i] > MAX_FIELDS)
            return -1;
    }
    req->argc = (int)counts[0];
    req->envc = (int)counts[1];
    req->nrlimits = (int)counts[2];
    if (req->argc < 1 || 4 + req->nrlimits + 1 + req->argc + req->envc != req->nfields)
        return -1;
    return 0;
}

/* In the child: what process::run gives a tool, then the real start. */
static void become(struct request *req, const int *passed, int npassed, start_main_fn real,
                   int (*main_fn)(int, char **, char **), void (*init)(void), void (*fini)(void),
                   void (*rtld_fini)(void), void *stack_end, const sigset_t *mask) {
    int err = 0;
    int reply = passed[0], output = passed[1], ruleset = passed[2];
    char **field = req->fields + 4;
    if (setpgid(0, 0) != 0)
        err = errno;
    for (int i = 0; !err && i < req->nrlimits; i++, field++) {
        char *end;
        unsigned long resource = strtoul(*field, &end, 10);
        if (*end != '=') {
            err = EINVAL;
            break;
        }
        struct rlimit limit;
        limit.rlim_cur = limit.rlim_max = strtoull(end + 1, NULL, 10);
        if (setrlimit((int)resource, &limit) != 0)
            err = errno;
    }
    if (err) /* the rlimit fields were not all consumed */
        field = req->fields + 4 + req->nrlimits;
    char *cwd = *field++;
    if (!err && *cwd && chdir(cwd) != 0)
        err = errno;
    int devnull = err ? -1 : open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (!err && devnull < 0)
        err = errno;
    if (!err && (dup2(devnull, 0) < 0 || dup2(output, 1) < 0 || dup2(output, 2) < 0))
        err = errno;
    /* The cgroups first, so that the tool's memory is counted from its start
     * (one thread here: writing 0 to `tasks` moves the process). */
    for (int i = 3; !err && i < npassed; i++)
        if (write(passed[i], "0", 1) != 1)
            err = errno ? errno : EIO;
    /* A nested Landlock domain, the server's ruleset: at least it scopes
     * signals and abstract sockets, so that the tool can signal or trace
     * neither the zygote nor the server. */
    if (!err && (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || syscall(SYS_landlock_restrict_self, ruleset, 0) != 0))
        err = errno;
    if (err) {
        say(reply, REPLY_NOT_STARTED, err);
        _exit(127);
    }
    /* Nothing of the zygote's stays open: 0-2 are the tool's. */
    syscall(SYS_close_range, 3, ~0U, 0);
    sigprocmask(SIG_SETMASK, mask, NULL);

    /* argv, NULL, environment, NULL: the layout the kernel gives. */
    char **vector = calloc((size_t)req->argc + (size_t)req->envc + 2, sizeof(char *));
    if (!vector)
        _exit(127);
    for (int i = 0; i < req->argc; i++)
        vector[i] = *field++;
    for (int i = 0; i < req->envc; i++)
        vector[req->argc + 1 + i] = *field++;
    environ = vector + req->argc + 1;
    program_invocation_name = vector[0];
    char *slash = strrchr(vector[0], '/');
    program_invocation_short_name = slash ? slash + 1 : vector[0];
    _exit(real(main_fn, req->argc, vector, init, fini, rtld_fini, stack_end));
}

struct child {
    pid_t pid;
    int reply;
};

int __libc_start_main(int (*main_fn)(int, char **, char **), int argc, char **argv, void (*init)(void),
                      void (*fini)(void), void (*rtld_fini)(void), void *stack_end) {
    start_main_fn real = (start_main_fn)dlsym(RTLD_NEXT, "__libc_start_main");
    const char *fd_text = getenv("WHEELWRIGHT_ZYGOTE_FD");
    if (!real)
        _exit(127);
    if (!fd_text)
        return real(main_fn, argc, argv, init, fini, rtld_fini, stack_end);
    int control = atoi(fd_text);
    /* No PR_SET_PDEATHSIG: it follows the thread that started the zygote,
     * not the server. The zygote ends when the server's end of the control
     * socket closes (so with the server), and with the sandbox. */
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    int sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sigfd < 0 || fcntl(control, F_SETFD, FD_CLOEXEC) != 0)
        _exit(1);
    say(control, REPLY_READY, (int32_t)getpid());

    static char buf[MAX_REQUEST];
    static struct request req;
    static struct child children[MAX_CHILDREN];
    for (;;) {
        struct pollfd fds[2] = {{control, POLLIN, 0}, {sigfd, POLLIN, 0}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            _exit(1);
        }
        if (fds[1].revents & POLLIN) {
            struct signalfd_siginfo info;
            while (read(sigfd, &info, sizeof info) > 0) {
            }
            int status;
            pid_t pid;
            while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                for (int i = 0; i < MAX_CHILDREN; i++) {
                    if (children[i].pid == pid) {
                        say(children[i].reply, REPLY_EXITED, status);
                        close(children[i].reply);
                        children[i].pid = 0;
                    }
                }
            }
        }
        if (fds[0].revents & (POLLHUP | POLLERR | POLLNVAL) && !(fds[0].revents & POLLIN))
            _exit(0);
        if (!(fds[0].revents & POLLIN))
            continue;
        /* Aligned for the cmsghdr it holds. */
        union {
            char buf[CMSG_SPACE(MAX_PASSED * sizeof(int))];
            struct cmsghdr align;
        } cbuf;
        struct iovec iov = {buf, sizeof buf};
        struct msghdr msg = {0};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.buf;
        msg.msg_controllen = sizeof cbuf.buf;
        ssize_t n = recvmsg(control, &msg, MSG_CMSG_CLOEXEC);
        if (n == 0)
            _exit(0); /* the server closed the channel */
        if (n < 0) {
            if (errno == EINTR)
                continue;
            _exit(1);
        }
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || !cmsg || cmsg->cmsg_level != SOL_SOCKET ||
            cmsg->cmsg_type != SCM_RIGHTS || cmsg->cmsg_len < CMSG_LEN(3 * sizeof(int)) ||
            (cmsg->cmsg_len - CMSG_LEN(0)) % sizeof(int) != 0 || CMSG_NXTHDR(&msg, cmsg))
            _exit(2);
        int npassed = (int)((cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int passed[MAX_PASSED];
        if (npassed > MAX_PASSED)
            _exit(2);
        memcpy(passed, CMSG_DATA(cmsg), (size_t)npassed * sizeof(int));
        if (parse(buf, (size_t)n, &req) != 0)
            _exit(2);
        int slot = -1;
        for (int i = 0; i < MAX_CHILDREN && slot < 0; i++)
            if (children[i].pid == 0)
                slot = i;
        pid_t pid = slot < 0 ? -1 : fork();
        if (pid == 0) {
            close(control);
            close(sigfd);
            become(&req, passed, npassed, real, main_fn, init, fini, rtld_fini, stack_end, &old);
        }
        for (int i = 1; i < npassed; i++)
            close(passed[i]);
        /* Nothing of this request (paths, arguments, environment) is left
         * for the next fork, which may be another build's. */
        explicit_bzero(buf, (size_t)n);
        if (pid < 0) {
            say(passed[0], REPLY_NOT_STARTED, slot < 0 ? EAGAIN : errno);
            close(passed[0]);
            continue;
        }
        /* Here too, so that the group exists before the server may kill it. */
        setpgid(pid, pid);
        children[slot].pid = pid;
        children[slot].reply = passed[0];
        say(passed[0], REPLY_STARTED, (int32_t)pid);
    }
}
