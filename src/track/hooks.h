/* Process-wide hooks of the logging API: finish open runs at exit(), flush them on SIGTERM and
 * SIGINT (then chain to the previous handler), and disarm them in a forked child. Owner: track/. */
#ifndef EXPT_TRACK_HOOKS_H
#define EXPT_TRACK_HOOKS_H

#include <signal.h>

#include "../../include/expt.h"
#include "../util/err.h"

/* Adds run to the runs the hooks reach, installing the hooks on first use. */
int expt_hooks_register(struct expt_run *run, struct expt_err *err);
/* Removes run (before it is freed); a run never registered is a no-op. */
void expt_hooks_unregister(struct expt_run *run);

/* A thread holding a run's lock must not wait for the background threads from a signal handler
 * (they need that lock): the handler defers the signal while this is non-zero, and the thread
 * raises it again when it lets go (expt_hooks_leave). */
extern _Thread_local int expt_hooks_in_lock;
extern volatile sig_atomic_t expt_hooks_deferred;
void expt_hooks_redeliver(void);

static inline void expt_hooks_enter(void)
{
	expt_hooks_in_lock++;
}

static inline void expt_hooks_leave(void)
{
	if (--expt_hooks_in_lock == 0 && expt_hooks_deferred)
		expt_hooks_redeliver();
}

/* Counts the forks of this process (bumped in every child): a run remembers the count at open,
 * and a different one means this is a child that has none of its threads. Works for every run,
 * hooks or not; expt_hooks_watch_forks must have been called before the run opened. */
void expt_hooks_watch_forks(void);
unsigned expt_hooks_fork_gen(void);

/* Provided by run.c for the hooks. status NULL: the status set on the run, else from
 * exit_code (0: succeeded, else failed). */
void expt_run_shutdown(struct expt_run *run, const char *status, int exit_code, int sig);
void expt_run_mark_forked(struct expt_run *run);

#endif
