package transport

import (
	"sync"
	"time"
)

// workers runs the handler calls of one inbound connection on goroutines that are
// kept between calls. A goroutine per call starts with a small stack and grows it
// (copying it) on every call that reaches storage, which cost a replica a quarter
// of its CPU; a kept goroutine has its stack grown already. An idle worker exits
// after workerIdle, so a quiet connection keeps none.
//
// The connection's semaphore bounds the calls in flight, hence the workers. run is
// called by the connection's read loop only; stop waits for every worker.
type workers struct {
	work chan func()
	wg   sync.WaitGroup
	done chan struct{}
}

// workerIdle is how long a worker waits for another call before it exits.
const workerIdle = 2 * time.Second

func newWorkers() *workers {
	return &workers{work: make(chan func()), done: make(chan struct{})}
}

// run runs fn on an idle worker, or on a new one when none is idle.
func (w *workers) run(fn func()) {
	select {
	case w.work <- fn:
	default:
		w.wg.Add(1)
		go w.loop(fn)
	}
}

func (w *workers) loop(fn func()) {
	defer w.wg.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		fn()
		idle.Reset(workerIdle)
		select {
		case fn = <-w.work:
		case <-idle.C:
			return
		case <-w.done:
			return
		}
	}
}

// stop makes the idle workers exit and waits for every worker to finish its call.
func (w *workers) stop() {
	close(w.done)
	w.wg.Wait()
}
