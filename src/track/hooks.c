/* Process-wide hooks of the logging API. exit() and signals belong to the whole process, so the
 * list of open runs they must reach is the one piece of global state below cli/: a mutex, the
 * list, two pipes and a watcher thread, all set up on the first run opened. */
#include "hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

#define SIGNAL_WAIT_MS 5000 /* how long a signal handler waits for the runs to flush */
#define FLUSH_WAIT_MS 3000

_Thread_local int expt_hooks_in_lock __attribute__((tls_model("initial-exec")));
volatile sig_atomic_t expt_hooks_deferred;

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct expt_run **reg;
static size_t nreg, capreg;
static int installed;	/* on_exit, atfork and the signal handlers (once per process image) */
static pid_t owner_pid; /* the process the pipes and the watcher belong to */
static int term_pipe[2] = {-1, -1}, done_pipe[2] = {-1, -1};
static struct sigaction old_term, old_int;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static atomic_uint fork_gen;

void expt_hooks_redeliver(void)
{
	int sig = expt_hooks_deferred;

	expt_hooks_deferred = 0;
	if (sig)
		raise(sig);
}

static void reg_lock(void)
{
	expt_hooks_enter();
	pthread_mutex_lock(&reg_mu);
}

static void reg_unlock(void)
{
	pthread_mutex_unlock(&reg_mu);
	expt_hooks_leave();
}

/* Reads [mode, signal] requests from the handler and answers each with one byte when done:
 * mode 'F' finishes every run (the process is about to die), 'f' only flushes them. */
static void *watcher(void *arg)
{
	int rfd = term_pipe[0], wfd = done_pipe[1];

	for (;;) {
		unsigned char m[2];
		ssize_t r = read(rfd, m, 2);
		if (r < 0 && errno == EINTR)
			continue;
		if (r != 2)
			return NULL;
		reg_lock();
		for (size_t i = 0; i < nreg; i++) {
			if (m[0] == 'F')
				expt_run_shutdown(reg[i], "stopped", -1, m[1]);
			else
				expt_run_flush(reg[i], FLUSH_WAIT_MS);
		}
		reg_unlock();
		while (write(wfd, "d", 1) < 0 && errno == EINTR)
			;
	}
}

static int is_default(const struct sigaction *sa)
{
	return !(sa->sa_flags & SA_SIGINFO) && sa->sa_handler == SIG_DFL;
}

static void notify_and_wait(int mode, int sig)
{
	unsigned char m[2] = {(unsigned char)mode, (unsigned char)sig}, c;
	struct pollfd p = {done_pipe[0], POLLIN, 0};

	/* Answers to an earlier request that timed out must not count for this one. */
	while (read(done_pipe[0], &c, 1) == 1)
		;
	if (write(term_pipe[1], m, 2) != 2)
		return;
	while (poll(&p, 1, SIGNAL_WAIT_MS) < 0 && errno == EINTR)
		;
	if (p.revents & POLLIN) {
		if (read(done_pipe[0], &c, 1) < 0) {
			/* Nothing to do: the wait is over either way. */
		}
	}
}

static void on_signal(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	struct sigaction *old = sig == SIGTERM ? &old_term : &old_int;

	if (getpid() == owner_pid) {
		if (expt_hooks_in_lock) {
			expt_hooks_deferred = sig;
			errno = saved;
			return;
		}
		notify_and_wait(is_default(old) ? 'F' : 'f', sig);
	}
	if (old->sa_flags & SA_SIGINFO) {
		old->sa_sigaction(sig, si, uc);
	} else if (old->sa_handler == SIG_DFL) {
		/* Die of the signal as the program would have: the parent sees the real cause. */
		sigaction(sig, old, NULL);
		raise(sig);
	} else if (old->sa_handler != SIG_IGN) {
		old->sa_handler(sig);
	}
	errno = saved;
}

static void exit_hook(int status, void *arg)
{
	if (getpid() != owner_pid)
		return;
	reg_lock();
	for (size_t i = 0; i < nreg; i++)
		expt_run_shutdown(reg[i], NULL, status, 0);
	reg_unlock();
}

static void fork_prepare(void)
{
	pthread_mutex_lock(&reg_mu);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&reg_mu);
}

static void fork_child(void)
{
	/* The child has none of the background threads: its copies of the runs are dead. */
	for (size_t i = 0; i < nreg; i++)
		expt_run_mark_forked(reg[i]);
	nreg = 0;
	pthread_mutex_unlock(&reg_mu);
}

static void fork_count(void)
{
	atomic_fetch_add_explicit(&fork_gen, 1, memory_order_relaxed);
}

static void watch_forks_once(void)
{
	pthread_atfork(NULL, NULL, fork_count);
}

void expt_hooks_watch_forks(void)
{
	pthread_once(&fork_once, watch_forks_once);
}

unsigned expt_hooks_fork_gen(void)
{
	return atomic_load_explicit(&fork_gen, memory_order_relaxed);
}

/* Puts our handler in front of the current one, unless it is already there. Done on every open:
 * a program that set its own handler after an earlier run opened gets chained too. */
static void install_signal(int sig, struct sigaction *old)
{
	struct sigaction cur, sa;

	if (sigaction(sig, NULL, &cur))
		return;
	if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_signal)
		return;
	if (!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_IGN)
		return; /* the program ignores it: so do we */
	*old = cur;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_signal;
	/* Keep the previous handler's restart behaviour (Python relies on EINTR). */
	sa.sa_flags = SA_SIGINFO | (cur.sa_flags & (SA_RESTART | SA_ONSTACK));
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGTERM);
	sigaddset(&sa.sa_mask, SIGINT);
	sigaction(sig, &sa, NULL);
}

/* Pipes and the watcher thread of this process (again in a forked child that opens a run). */
static int start_watcher(struct expt_err *err)
{
	pthread_t th;
	sigset_t all, prev;
	int rc;

	if (pipe2(term_pipe, O_CLOEXEC) || pipe2(done_pipe, O_CLOEXEC | O_NONBLOCK))
		return expt_err_errno(err, EXPT_EFAIL, "cannot create the signal pipes");
	fcntl(term_pipe[1], F_SETFL, O_NONBLOCK);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &prev);
	rc = pthread_create(&th, NULL, watcher, NULL);
	pthread_sigmask(SIG_SETMASK, &prev, NULL);
	if (rc) {
		errno = rc;
		return expt_err_errno(err, EXPT_EFAIL, "cannot start the signal watcher thread");
	}
	pthread_detach(th);
	owner_pid = getpid();
	return 0;
}

int expt_hooks_register(struct expt_run *run, struct expt_err *err)
{
	int rc = 0;

	reg_lock();
	if (owner_pid != getpid()) {
		if (term_pipe[0] >= 0) {
			/* A forked child: the parent's pipes are shared with it; make new ones. */
			close(term_pipe[0]);
			close(term_pipe[1]);
			close(done_pipe[0]);
			close(done_pipe[1]);
		}
		if ((rc = start_watcher(err)))
			goto out;
	}
	if (!installed) {
		on_exit(exit_hook, NULL);
		pthread_atfork(fork_prepare, fork_parent, fork_child);
		installed = 1;
	}
	install_signal(SIGTERM, &old_term);
	install_signal(SIGINT, &old_int);
	EXPT_TRY_GROW(reg, nreg + 1, capreg, rc);
	if (rc) {
		rc = expt_err_set(err, EXPT_ENOMEM, "out of memory");
		goto out;
	}
	reg[nreg++] = run;
out:
	reg_unlock();
	return rc;
}

void expt_hooks_unregister(struct expt_run *run)
{
	reg_lock();
	for (size_t i = 0; i < nreg; i++) {
		if (reg[i] == run) {
			memmove(reg + i, reg + i + 1, (nreg - i - 1) * sizeof(*reg));
			nreg--;
			break;
		}
	}
	reg_unlock();
}
