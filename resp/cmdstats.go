package resp

import (
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// cmdStats are one command's counters for INFO commandstats, as Redis keeps them:
// calls that ran (and their time), calls rejected before running (arity,
// authentication) and calls that ran and answered an error.
type cmdStats struct {
	calls, usec, rejected, failed atomic.Int64
}

func (st *cmdStats) reset() {
	st.calls.Store(0)
	st.usec.Store(0)
	st.rejected.Store(0)
	st.failed.Store(0)
}

// ran records one call that ran for d and failed or not.
func (st *cmdStats) ran(d time.Duration, failed bool) {
	st.calls.Add(1)
	st.usec.Add(d.Microseconds())
	if failed {
		st.failed.Add(1)
	}
}

// eachCommand calls fn for every command and subcommand, in table order.
func (t *table) eachCommand(fn func(*command)) {
	for _, c := range t.list {
		fn(c)
		for _, sc := range c.subs {
			fn(sc)
		}
	}
}

// commandStats writes INFO commandstats: a cmdstat_<name> line for every command
// called or rejected since the start or the last CONFIG RESETSTAT.
func (s *Server) commandStats(b *infoBuilder) {
	s.cmds.eachCommand(func(c *command) {
		calls, rejected := c.stats.calls.Load(), c.stats.rejected.Load()
		if calls == 0 && rejected == 0 {
			return
		}
		usec := c.stats.usec.Load()
		perCall := 0.0
		if calls > 0 {
			perCall = float64(usec) / float64(calls)
		}
		b.field("cmdstat_"+c.name, "calls="+strconv.FormatInt(calls, 10)+
			",usec="+strconv.FormatInt(usec, 10)+
			",usec_per_call="+strconv.FormatFloat(perCall, 'f', 2, 64)+
			",rejected_calls="+strconv.FormatInt(rejected, 10)+
			",failed_calls="+strconv.FormatInt(c.stats.failed.Load(), 10))
	})
}

// cpuStats writes INFO cpu: the process's and its children's CPU time, from
// getrusage, in Redis's "seconds.microseconds" form.
func cpuStats(b *infoBuilder) {
	tv := func(t syscall.Timeval) string {
		us := strconv.FormatInt(int64(t.Usec), 10)
		for len(us) < 6 {
			us = "0" + us
		}
		return strconv.FormatInt(int64(t.Sec), 10) + "." + us
	}
	var self, children syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &self) == nil {
		b.field("used_cpu_sys", tv(self.Stime))
		b.field("used_cpu_user", tv(self.Utime))
	}
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children) == nil {
		b.field("used_cpu_sys_children", tv(children.Stime))
		b.field("used_cpu_user_children", tv(children.Utime))
	}
}
