//! A guard around the balancer of every upstream `ferrocorn_pass` uses:
//! before a request that nginx would not retry (POST, LOCK, PATCH without
//! `non_idempotent`, a streamed body, `ferrocorn_next_upstream` without
//! `error`) goes out on a kept-alive connection, the connection is checked
//! for an end of file the worker already sent.
//!
//! A worker closes its idle connections when it stops (HUP, TERM,
//! recycling). nginx's keepalive module closes such a connection when it
//! handles the close event, but a request picked in the same event-loop
//! round takes it first, and nginx answers 502 instead of retrying a
//! non-idempotent request whose bytes it sent. One `recv(MSG_PEEK)` before
//! the send finds the end of file: the dead connection is closed and a new
//! one is made to the same server. Requests nginx retries by itself (GET,
//! HEAD...) skip the check and its syscall, and get no guard at all.
//!
//! The wrap: at postconfiguration, each such upstream's `peer.init` (the
//! balancer's, or keepalive's around it, an `upstream {}` block's or the
//! one [`crate::keepalive`] gives an address `ferrocorn_pass` names) is replaced by [`init_peer`],
//! which calls the original, then, for a request nginx would not retry,
//! puts a [`Guard`] in front of the per-request `get`/`free` callbacks, the
//! way the keepalive module wraps the balancer.

use core::ffi::c_void;
use core::{mem, ptr};

use ngx::ffi::{
    ngx_array_push, ngx_close_connection, ngx_conf_t, ngx_connection_t, ngx_destroy_pool,
    ngx_http_conf_ctx_t, ngx_http_request_t, ngx_http_upstream_init_peer_pt,
    ngx_http_upstream_srv_conf_t, ngx_int_t, ngx_palloc, ngx_peer_connection_t, ngx_uint_t, recv,
    MSG_DONTWAIT, MSG_PEEK, NGX_HTTP_LOCK, NGX_HTTP_PATCH, NGX_HTTP_POST,
    NGX_HTTP_UPSTREAM_FT_ERROR, NGX_HTTP_UPSTREAM_FT_NON_IDEMPOTENT, NGX_LOG_INFO,
};
use ngx::ngx_log_error;

use crate::config::MainConf;
use crate::ffi::{request_main_conf, DONE, ERROR, OK};
use crate::module;

/// One guarded upstream: its `peer.init` before the wrap.
#[repr(C)]
pub struct Guarded {
    uscf: *mut ngx_http_upstream_srv_conf_t,
    init: ngx_http_upstream_init_peer_pt,
}

/// Records that `ferrocorn_pass` uses `uscf`, once per upstream. False
/// when the pool is out of memory.
///
/// # Safety
/// `cf` is inside a directive of an http block where our main conf exists;
/// `uscf` lives as long as the configuration.
pub unsafe fn register(cf: *mut ngx_conf_t, uscf: *mut ngx_http_upstream_srv_conf_t) -> bool {
    // SAFETY: per the contract, our main conf exists in this http block.
    let mcf = unsafe { conf_main_conf(cf) };
    // SAFETY: the array holds `Guarded` items (create_main_conf).
    if unsafe { guarded(mcf) }.iter().any(|g| g.uscf == uscf) {
        return true;
    }
    // SAFETY: a live array in the conf pool.
    let slot = unsafe { ngx_array_push(&mut mcf.guarded) }.cast::<Guarded>();
    if slot.is_null() {
        return false;
    }
    // SAFETY: ngx_array_push returned room for one item.
    unsafe { slot.write(Guarded { uscf, init: None }) };
    true
}

/// `postconfiguration`: gives each registered implicit upstream nginx's
/// keepalive ([`crate::keepalive`]), then wraps each registered upstream's
/// `peer.init`. By now the upstream module's init_main_conf has run every
/// `init_upstream` (keepalive's included), so `peer.init` is final.
///
/// # Safety
/// Called by nginx with the http block's conf.
pub unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
    // SAFETY: nginx calls postconfiguration with the http block's ctx.
    let mcf = unsafe { conf_main_conf(cf) };
    let keepalive = mcf.keepalive;
    // SAFETY: the array holds `Guarded` items.
    for g in unsafe { guarded_mut(mcf) } {
        // SAFETY: uscf was returned by ngx_http_upstream_add and lives
        // with the configuration.
        let uscf = unsafe { &mut *g.uscf };
        if g.init.is_some() {
            continue; // wrapped already
        }
        // SAFETY: the http block's conf at postconfiguration; the upstream
        // module has run uscf's init_upstream.
        if !unsafe { crate::keepalive::apply(cf, &keepalive, uscf) } {
            return ERROR;
        }
        g.init = uscf.peer.init;
        uscf.peer.init = Some(init_peer);
    }
    OK
}

/// What a request's peer callbacks were before the guard.
struct Guard {
    data: *mut c_void,
    get: ngx::ffi::ngx_event_get_peer_pt,
    free: ngx::ffi::ngx_event_free_peer_pt,
    notify: ngx::ffi::ngx_event_notify_peer_pt,
}

/// The wrapped `peer.init`: the original, then the guard around its
/// callbacks when the request could not be retried (what decides it, the
/// method, the body mode and `next_upstream`, is settled by now).
unsafe extern "C" fn init_peer(
    r: *mut ngx_http_request_t,
    us: *mut ngx_http_upstream_srv_conf_t,
) -> ngx_int_t {
    // SAFETY: nginx passes a live request of a location with our main conf.
    let mcf: &MainConf = unsafe { request_main_conf(&*r, module()) };
    // SAFETY: the array holds `Guarded` items.
    let Some(init) = unsafe { guarded(mcf) }
        .iter()
        .find(|g| g.uscf == us)
        .and_then(|g| g.init)
    else {
        return ERROR;
    };
    // SAFETY: the balancer's own init, with the arguments nginx gave us.
    let rc = unsafe { init(r, us) };
    // SAFETY: r is live and has its upstream, with its conf set.
    if rc != OK || !would_not_be_retried(unsafe { &*r }) {
        return rc;
    }
    // SAFETY: r is live and has its upstream.
    let (pool, pc) = unsafe { ((*r).pool, &mut (*(*r).upstream).peer) };
    // SAFETY: request pool allocation, freed with the request.
    let guard = unsafe { ngx_palloc(pool, mem::size_of::<Guard>()) }.cast::<Guard>();
    if guard.is_null() {
        return ERROR;
    }
    // SAFETY: freshly allocated and sized for a Guard.
    unsafe {
        guard.write(Guard {
            data: pc.data,
            get: pc.get,
            free: pc.free,
            notify: pc.notify,
        })
    };
    pc.data = guard.cast();
    pc.get = Some(guarded_get);
    pc.free = Some(guarded_free);
    if pc.notify.is_some() {
        pc.notify = Some(guarded_notify);
    }
    OK
}

/// `pc->get`: the balancer's choice; a cached connection is checked first
/// (only requests nginx would not retry have the guard).
unsafe extern "C" fn guarded_get(pc: *mut ngx_peer_connection_t, data: *mut c_void) -> ngx_int_t {
    // SAFETY: `data` is the Guard init_peer installed with this callback.
    let g = unsafe { &*data.cast::<Guard>() };
    let Some(get) = g.get else { return ERROR };
    // SAFETY: the original callback with its own data.
    let rc = unsafe { get(pc, g.data) };
    // SAFETY: nginx passes the request's live peer connection.
    let pc = unsafe { &mut *pc };
    if rc != DONE || pc.cached() == 0 || pc.connection.is_null() {
        return rc;
    }
    let c = pc.connection;
    // SAFETY: a cached connection handed over by the keepalive module.
    if !unsafe { closed_by_peer(&*c) } {
        return rc;
    }
    ngx_log_error!(
        NGX_LOG_INFO,
        pc.log,
        "ferrocorn: kept-alive upstream connection closed by the worker, connecting anew"
    );
    // As the keepalive module closes a cached connection: pool, then socket.
    // SAFETY: the connection is ours now (taken out of the cache) and unused.
    unsafe {
        if !(*c).pool.is_null() {
            ngx_destroy_pool((*c).pool);
        }
        ngx_close_connection(c);
    }
    pc.connection = ptr::null_mut();
    pc.set_cached(0);
    // The balancer chose this server: connect to it afresh.
    OK
}

/// `pc->free`: the original, with its own data.
unsafe extern "C" fn guarded_free(
    pc: *mut ngx_peer_connection_t,
    data: *mut c_void,
    state: ngx_uint_t,
) {
    // SAFETY: `data` is the Guard init_peer installed with this callback.
    let g = unsafe { &*data.cast::<Guard>() };
    if let Some(free) = g.free {
        // SAFETY: the original callback with its own data.
        unsafe { free(pc, g.data, state) };
    }
}

/// `pc->notify`, when the balancer has one.
unsafe extern "C" fn guarded_notify(
    pc: *mut ngx_peer_connection_t,
    data: *mut c_void,
    type_: ngx_uint_t,
) {
    // SAFETY: `data` is the Guard init_peer installed with this callback.
    let g = unsafe { &*data.cast::<Guard>() };
    if let Some(notify) = g.notify {
        // SAFETY: the original callback with its own data.
        unsafe { notify(pc, g.data, type_) };
    }
}

/// nginx retries a request whose send fails on a cached connection unless
/// it is non-idempotent (without `non_idempotent`), its body is streamed,
/// or `error` is not among the `next_upstream` cases.
fn would_not_be_retried(r: &ngx_http_request_t) -> bool {
    // SAFETY: a request with an upstream has its conf set by our handler.
    let next = unsafe { (*(*r.upstream).conf).next_upstream };
    let non_idempotent = (NGX_HTTP_POST | NGX_HTTP_LOCK | NGX_HTTP_PATCH) as ngx_uint_t;
    next & NGX_HTTP_UPSTREAM_FT_ERROR as ngx_uint_t == 0
        || r.request_body_no_buffering() != 0
        || (r.method & non_idempotent != 0
            && next & NGX_HTTP_UPSTREAM_FT_NON_IDEMPOTENT as ngx_uint_t == 0)
}

/// True when the idle connection has nothing to say but end of file (or
/// stray bytes, or an error): it cannot carry a request.
fn closed_by_peer(c: &ngx_connection_t) -> bool {
    let mut byte = 0u8;
    // SAFETY: a one-byte peek into a local; the socket stays open.
    let n = unsafe {
        recv(
            c.fd,
            ptr::addr_of_mut!(byte).cast(),
            1,
            (MSG_PEEK | MSG_DONTWAIT) as i32,
        )
    };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
        );
    }
    true
}

/// Our main conf from a configuration-time `cf`.
///
/// # Safety
/// `cf->ctx` is an http block's conf ctx, where our module has its slot.
unsafe fn conf_main_conf<'a>(cf: *mut ngx_conf_t) -> &'a mut MainConf {
    // SAFETY: per the contract.
    unsafe {
        let ctx = (*cf).ctx.cast::<ngx_http_conf_ctx_t>();
        &mut *(*(*ctx).main_conf.add(module().ctx_index)).cast::<MainConf>()
    }
}

/// The registered upstreams.
///
/// # Safety
/// `mcf.guarded` holds `Guarded` items.
unsafe fn guarded(mcf: &MainConf) -> &[Guarded] {
    if mcf.guarded.nelts == 0 {
        return &[];
    }
    // SAFETY: per the contract; nelts items from elts.
    unsafe { core::slice::from_raw_parts(mcf.guarded.elts.cast(), mcf.guarded.nelts) }
}

/// As [`guarded`], mutable.
///
/// # Safety
/// As for [`guarded`].
unsafe fn guarded_mut(mcf: &mut MainConf) -> &mut [Guarded] {
    if mcf.guarded.nelts == 0 {
        return &mut [];
    }
    // SAFETY: per the contract; nelts items from elts.
    unsafe { core::slice::from_raw_parts_mut(mcf.guarded.elts.cast(), mcf.guarded.nelts) }
}
