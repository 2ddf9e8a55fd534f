//! A threaded worker's serving loop (`--threads N`, N > 1), on Gunicorn's
//! gthread model. The main thread polls the listening sockets and the idle
//! kept-alive connections, as the single-threaded loop does, but hands a
//! readable connection (a request arrived, or nginx just connected) to one
//! of N pool threads. The thread serves its requests (the app with the
//! GIL, the socket I/O without) and hands it back to be kept alive, waking
//! the poll through a pipe. While all N threads are busy, the loop neither
//! accepts nor reads: nginx's other connections and the other workers take
//! the load.
//!
//! The heartbeat is the last progress of the least recently progressing
//! request ([`in_flight`]): one request stuck past `--timeout` makes the
//! master abort the whole worker.
//!
//! On a graceful stop the loop stops accepting, lets the threads finish
//! what they hold, then has them serve what already arrived on idle
//! connections and the connections queued on the listeners, and joins them.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::connection::Connection;
use super::idle_trim::IdleTrim;
use super::in_flight;
use super::recycle::Recycle;
use super::serve::{
    accept, between_requests, expire_idle, finish_connection, first_wait, last_round, park,
    serve_connection, Handler, Idle, LoopEnd, ServeConfig, FIRST_REQUEST_WAIT, MAX_DRAIN,
};
use crate::signals;
use crate::supervisor::heartbeat::{Pulse, BEAT_INTERVAL};
use crate::supervisor::listener::Listener;

/// Gives each pool thread a handler of its own.
pub trait ThreadHandlers: Sync {
    type Handler<'a>: Handler
    where
        Self: 'a;

    /// Runs `serve` on the calling pool thread with its handler.
    fn run_thread<'s>(&'s self, serve: &mut (dyn FnMut(&mut Self::Handler<'s>) + Send));

    /// Asked by the loop between requests, at most once a second, as
    /// [`Handler::restart_reason`].
    fn restart_reason(&self) -> Option<String> {
        None
    }
    /// Called on the main thread when a signal interrupted its wait: runs
    /// what must run there (Python's own signal handlers).
    fn after_signal(&self) {}
}

/// What a pool thread does with a connection.
enum Job {
    /// Serve the requests it has ready, then hand it back.
    Serve(Connection),
    /// On the way out: serve what already arrived (or the first request of
    /// a connection nginx just opened, waiting for it until the deadline),
    /// then close it.
    Finish(Connection, Instant),
}

/// A connection a thread holds, as the loop will park it when it is back.
#[derive(Clone, Copy)]
struct Lent {
    /// Its deadline when it was idle.
    deadline: Instant,
    /// It held part of a frame when it was handed over.
    was_partial: bool,
    /// Just accepted: it waits for its first request.
    fresh: bool,
}

/// A thread's report: its number, and the connection if it stays open.
type Done = (usize, Option<Connection>);

/// Wakes the loop's poll when a thread hands a connection back.
struct Wake {
    read: OwnedFd,
    write: OwnedFd,
}

impl Wake {
    fn new() -> nix::Result<Wake> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        Ok(Wake { read, write })
    }

    fn wake(&self) {
        // A full pipe already holds a wake-up.
        let _ = nix::unistd::write(&self.write, &[1]);
    }

    fn clear(&self) {
        let mut buf = [0u8; 64];
        while let Ok(1..) = nix::unistd::read(&self.read, &mut buf) {}
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

/// The main thread's view of the pool.
struct Pool {
    /// Each thread's job queue (it holds one job at a time).
    jobs: Vec<Sender<Job>>,
    done: Receiver<Done>,
    /// Threads with nothing to do.
    free: Vec<usize>,
    /// What each busy thread holds.
    lent: Vec<Option<Lent>>,
    /// A thread is gone (it could not start): the worker must be replaced.
    broken: bool,
}

impl Pool {
    fn busy(&self) -> usize {
        self.lent.iter().filter(|l| l.is_some()).count()
    }

    /// Hands `job` to a free thread (the caller checked there is one).
    fn lend(&mut self, job: Job, lent: Lent) {
        let Some(t) = self.free.pop() else { return };
        if self.jobs[t].send(job).is_err() {
            error!("serving thread {t} is gone; the worker stops");
            self.broken = true;
            return;
        }
        self.lent[t] = Some(lent);
    }

    /// Takes back what threads handed back; kept-alive connections go to
    /// `idle`.
    fn collect(&mut self, idle: &mut Vec<Idle>, config: &ServeConfig) {
        while let Ok((t, back)) = self.done.try_recv() {
            let Some(lent) = self.lent[t].take() else {
                continue;
            };
            self.free.push(t);
            let Some(conn) = back else { continue };
            if lent.fresh {
                let wait = first_wait(&conn, config);
                park(idle, conn, wait, config);
            } else if lent.was_partial && conn.partial_frame_len() > 0 {
                // Still the same frame: a trickling peer gets no more time
                // than the first deadline (no slowloris).
                idle.push(Idle {
                    conn,
                    deadline: lent.deadline,
                });
            } else {
                park(idle, conn, config.keep_alive, config);
            }
        }
    }

    /// Waits up to a beat for a thread to hand something back, beating.
    fn wait(&mut self, wake: &Wake, pulse: &mut Pulse, idle: &mut Vec<Idle>, config: &ServeConfig) {
        pulse.beat_as_of(Instant::now(), in_flight::oldest_progress());
        let mut fds = [PollFd::new(wake.fd(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(BEAT_INTERVAL).unwrap_or(PollTimeout::MAX);
        let _ = poll(&mut fds, timeout);
        wake.clear();
        self.collect(idle, config);
    }

    /// Hands `job` to a thread, waiting for one to be free.
    fn lend_waiting(
        &mut self,
        job: Job,
        wake: &Wake,
        pulse: &mut Pulse,
        idle: &mut Vec<Idle>,
        config: &ServeConfig,
    ) {
        while self.free.is_empty() && !self.broken {
            self.wait(wake, pulse, idle, config);
        }
        let lent = Lent {
            deadline: Instant::now(),
            was_partial: false,
            fresh: false,
        };
        self.lend(job, lent);
    }
}

/// Serves with `threads` pool threads until a graceful stop (SIGTERM),
/// recycling or the master's death; returns once every thread is joined.
pub fn serve_threaded<T: ThreadHandlers>(
    listeners: &[Listener],
    pulse: &mut Pulse,
    config: &ServeConfig,
    recycle: Recycle,
    handlers: &T,
    threads: usize,
) {
    let wake = match Wake::new() {
        Ok(wake) => wake,
        Err(e) => {
            error!("cannot start the serving threads: {e}");
            return;
        }
    };
    in_flight::start_pool(threads, config.io_timeout);
    let recycle = Mutex::new(recycle);
    std::thread::scope(|scope| {
        let (done_tx, done) = mpsc::channel::<Done>();
        let mut jobs = Vec::with_capacity(threads);
        for i in 0..threads {
            let (job_tx, job_rx) = mpsc::channel::<Job>();
            let done_tx = done_tx.clone();
            let (wake, recycle) = (&wake, &recycle);
            let spawned = std::thread::Builder::new()
                .name(format!("ferrocorn-{i}"))
                .spawn_scoped(scope, move || {
                    signals::leave_to_main_thread();
                    in_flight::enter_pool(i);
                    let mut serve = move |handler: &mut T::Handler<'_>| {
                        pool_thread(i, handler, &job_rx, &done_tx, wake, config, recycle);
                    };
                    handlers.run_thread(&mut serve);
                });
            if let Err(e) = spawned {
                error!("cannot start serving thread {i}: {e}");
                break;
            }
            jobs.push(job_tx);
        }
        drop(done_tx);
        let started = jobs.len();
        let mut pool = Pool {
            jobs,
            done,
            free: (0..started).rev().collect(),
            lent: vec![None; started],
            broken: started == 0,
        };
        let mut idle = Vec::new();
        let end = run(
            listeners, pulse, config, &recycle, handlers, &mut pool, &wake, &mut idle,
        );
        finish(listeners, pulse, config, &mut pool, &wake, idle, end);
        // Closing the job queues ends the threads; the scope joins them.
        pool.jobs.clear();
    });
}

/// A pool thread's life: serve what the loop hands over, hand it back.
fn pool_thread<H: Handler>(
    me: usize,
    handler: &mut H,
    jobs: &Receiver<Job>,
    done: &Sender<Done>,
    wake: &Wake,
    config: &ServeConfig,
    recycle: &Mutex<Recycle>,
) {
    let last = last_round(config);
    let mut counter = recycle;
    while let Ok(job) = jobs.recv() {
        let back = match job {
            Job::Serve(conn) => serve_connection(conn, handler, config, &mut counter),
            Job::Finish(conn, deadline) => {
                finish_connection(conn, deadline, handler, &last, &mut counter);
                None
            }
        };
        if done.send((me, back)).is_err() {
            return;
        }
        wake.wake();
    }
}

/// The loop proper, until it must end.
#[allow(clippy::too_many_arguments)]
fn run<T: ThreadHandlers>(
    listeners: &[Listener],
    pulse: &mut Pulse,
    config: &ServeConfig,
    recycle: &Mutex<Recycle>,
    handlers: &T,
    pool: &mut Pool,
    wake: &Wake,
    idle: &mut Vec<Idle>,
) -> LoopEnd {
    let mut ready: Vec<bool> = Vec::new();
    let mut last_check = Instant::now();
    // Booting (importing the app) freed memory; give it back before serving.
    let mut trim = IdleTrim::default();
    trim.now();
    loop {
        let now = Instant::now();
        pulse.beat_as_of(now, in_flight::oldest_progress());
        let recycle = recycle.lock().unwrap_or_else(PoisonError::into_inner);
        let restart_reason = || handlers.restart_reason();
        if let Some(end) = between_requests(now, &mut last_check, config, &recycle, restart_reason)
        {
            return end;
        }
        drop(recycle);
        if pool.broken {
            return LoopEnd::Stop;
        }
        expire_idle(idle, now);

        // All threads busy: leave new requests and connections where they
        // are until one is free.
        let taking = !pool.free.is_empty();
        let wait = idle
            .iter()
            .map(|c| c.deadline - now)
            .min()
            .unwrap_or(BEAT_INTERVAL)
            .min(BEAT_INTERVAL);
        // Freed memory goes back once no thread has had work for a while.
        let all_free = pool.busy() == 0;
        let wait = if all_free {
            wait.min(trim.wait())
        } else {
            wait
        };
        let watched = if taking {
            listeners.len() + idle.len()
        } else {
            0
        };
        let mut fds: Vec<PollFd<'_>> = std::iter::once(wake.fd())
            .chain(listeners.iter().map(|l| l.as_fd()))
            .chain(idle.iter().map(|c| c.conn.fd()))
            .take(1 + watched)
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect();
        let timeout =
            PollTimeout::try_from(wait + Duration::from_micros(999)).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(0) => {
                if all_free {
                    trim.idle();
                }
                continue;
            }
            Err(Errno::EINTR) => {
                drop(fds);
                handlers.after_signal();
                continue;
            }
            Ok(_) => trim.busy(),
            Err(e) => {
                error!("poll failed: {e}");
                return LoopEnd::Stop;
            }
        }
        ready.clear();
        ready.extend(fds[1..].iter().map(|f| f.any().unwrap_or(true)));
        drop(fds);
        wake.clear();

        if taking {
            let (listeners_ready, conns_ready) = ready.split_at(listeners.len());
            // Backwards, so swap_remove moves only entries already seen.
            for i in (0..idle.len()).rev() {
                if pool.free.is_empty() {
                    break;
                }
                if conns_ready[i] {
                    let Idle { conn, deadline } = idle.swap_remove(i);
                    let lent = Lent {
                        deadline,
                        was_partial: conn.partial_frame_len() > 0,
                        fresh: false,
                    };
                    pool.lend(Job::Serve(conn), lent);
                }
            }
            for (listener, _) in listeners.iter().zip(listeners_ready).filter(|(_, r)| **r) {
                if pool.free.is_empty() {
                    break;
                }
                // One connection per wake-up, so workers share new ones.
                if let Some(fd) = accept(listener, idle) {
                    let lent = Lent {
                        deadline: now,
                        was_partial: false,
                        fresh: true,
                    };
                    pool.lend(Job::Serve(Connection::new(fd, config.io_timeout)), lent);
                }
            }
        }
        pool.collect(idle, config);
    }
}

/// On the way out: waits for the threads to hand back what they hold;
/// then (unless it is a quick stop) has them serve what already arrived on
/// idle connections and, on a stop, the connections waiting in the listen
/// queue; waits for them to finish.
fn finish(
    listeners: &[Listener],
    pulse: &mut Pulse,
    config: &ServeConfig,
    pool: &mut Pool,
    wake: &Wake,
    mut idle: Vec<Idle>,
    end: LoopEnd,
) {
    debug!("finishing {} requests in flight", pool.busy());
    while pool.busy() > 0 {
        pool.wait(wake, pulse, &mut idle, config);
    }
    if matches!(end, LoopEnd::Quit) || pool.broken {
        return;
    }
    debug!("closing {} idle connections", idle.len());
    let first_request_deadline = Instant::now() + config.io_timeout.unwrap_or(FIRST_REQUEST_WAIT);
    let mut none = Vec::new();
    for Idle { conn, .. } in idle {
        let job = Job::Finish(conn, first_request_deadline);
        pool.lend_waiting(job, wake, pulse, &mut none, config);
    }
    // Recycling leaves the queue to the other workers; a stop serves it.
    if signals::stop_requested() {
        let mut drained = 0;
        for listener in listeners {
            while drained < MAX_DRAIN && !pool.broken {
                let Ok(fd) = listener.accept() else { break };
                drained += 1;
                let deadline = Instant::now() + config.io_timeout.unwrap_or(FIRST_REQUEST_WAIT);
                let job = Job::Finish(Connection::new(fd, config.io_timeout), deadline);
                pool.lend_waiting(job, wake, pulse, &mut none, config);
            }
        }
        if drained > 0 {
            debug!("serving {drained} queued connections before exiting");
        }
    }
    while pool.busy() > 0 {
        pool.wait(wake, pulse, &mut none, config);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::BindAddr;
    use crate::supervisor::heartbeat::Heartbeat;
    use crate::supervisor::listener::SocketFileOwner;
    use crate::worker::connection::Direct;
    use crate::worker::response::{PendingHead, ResponseWriter};
    use crate::worker::response_head::HeadFields;
    use bytes::{Bytes, BytesMut};
    use ferrocorn_protocol::frame;
    use ferrocorn_protocol::pb::{self, frame::Kind, Frame, RequestHead};
    use ferrocorn_protocol::request_head_view::RequestHeadView;
    use ferrocorn_protocol::PROTOCOL_VERSION;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::sync::Condvar;

    #[test]
    fn wake_wakes_a_poll_and_clears() {
        let wake = Wake::new().unwrap();
        let ready = |w: &Wake| {
            let mut fds = [PollFd::new(w.fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::ZERO).unwrap() == 1
        };
        assert!(!ready(&wake));
        for _ in 0..100_000 {
            wake.wake(); // a full pipe is fine
        }
        assert!(ready(&wake));
        wake.clear();
        assert!(!ready(&wake));
    }

    /// Requests inside the handler now, and the most at once.
    #[derive(Default)]
    struct Meeting {
        inside: Mutex<(usize, usize)>,
        changed: Condvar,
    }

    /// Waits (bounded) until `want` requests are inside at once, then
    /// answers with that peak.
    struct Meet<'a> {
        meeting: &'a Meeting,
        want: usize,
    }

    impl Handler for Meet<'_> {
        fn handle(
            &mut self,
            mut conn: Connection,
            _head: &RequestHeadView<'_>,
        ) -> Option<Connection> {
            let m = self.meeting;
            let mut inside = m.inside.lock().unwrap();
            inside.0 += 1;
            inside.1 = inside.1.max(inside.0);
            m.changed.notify_all();
            let (mut inside, _) = m
                .changed
                .wait_timeout_while(inside, Duration::from_secs(10), |i| i.1 < self.want)
                .unwrap();
            inside.0 -= 1;
            let peak = inside.1;
            drop(inside);
            let mut w = ResponseWriter::new(false);
            w.set_head(PendingHead {
                fields: HeadFields::new(200, b"OK"),
                status: 200,
                content_length: None,
            });
            w.body(&mut conn, peak.to_string().as_bytes(), false, &Direct)
                .ok()?;
            w.finish(&mut conn, &Direct).ok()?;
            Some(conn)
        }
    }

    impl ThreadHandlers for Meeting {
        type Handler<'a> = Meet<'a>;

        fn run_thread<'s>(&'s self, serve: &mut (dyn FnMut(&mut Meet<'s>) + Send)) {
            serve(&mut Meet {
                meeting: self,
                want: 4,
            });
        }
    }

    /// Sends one request on a new connection; returns the response body.
    fn exchange(path: &std::path::Path) -> Vec<u8> {
        let mut s = UnixStream::connect(path).unwrap();
        let mut bytes = frame::encode_to_vec(&Frame {
            kind: Some(Kind::RequestHead(RequestHead {
                protocol_version: PROTOCOL_VERSION,
                method: Bytes::from_static(b"GET"),
                content_length: -1,
                ..Default::default()
            })),
        });
        bytes.extend(frame::encode_to_vec(&Frame {
            kind: Some(Kind::RequestEnd(pb::RequestEnd {})),
        }));
        s.write_all(&bytes).unwrap();
        let mut got = BytesMut::new();
        let mut body = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            while let Some(f) = frame::decode(&mut got).unwrap() {
                match f.kind.unwrap() {
                    Kind::ResponseBody(b) => body.extend_from_slice(&b),
                    Kind::ResponseEnd(_) => return body,
                    _ => {}
                }
            }
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed before response_end");
            got.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn four_threads_serve_four_requests_at_once_and_stop_when_recycled() {
        let dir = std::env::temp_dir().join(format!("ferrocorn-pool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pool.sock");
        let listener = Listener::bind(
            &BindAddr::Unix(path.clone()),
            &SocketFileOwner {
                uid: None,
                gid: None,
                mode: 0o600,
            },
        )
        .unwrap();
        listener.listen().unwrap();
        let clients: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || exchange(&path))
            })
            .collect();
        // Kept for the life of the test process, as in a worker: socket
        // waits of other tests touch it from now on.
        let pulse = Box::leak(Box::new(Pulse::new(Heartbeat::new().unwrap())));
        let config = ServeConfig {
            keep_alive: Duration::from_secs(5),
            io_timeout: Some(Duration::from_secs(5)),
            master: nix::unistd::getppid(),
        };
        let meeting = Meeting::default();
        // Recycled after 8 requests: the loop ends on its own.
        let recycle = Recycle::new(8, 0, 0, 0);
        serve_threaded(&[listener], pulse, &config, recycle, &meeting, 4);
        let bodies: Vec<Vec<u8>> = clients.into_iter().map(|c| c.join().unwrap()).collect();
        assert_eq!(bodies, vec![b"4".to_vec(); 8]);
        assert_eq!(meeting.inside.lock().unwrap().1, 4, "never more than 4");
        let _ = std::fs::remove_dir_all(dir);
    }
}
