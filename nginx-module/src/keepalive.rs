//! Kept-alive connections for the addresses `ferrocorn_pass` names
//! directly (`ferrocorn_pass unix:/run/app.sock;`, no `upstream {}` block).
//!
//! nginx gives such an address an implicit upstream: round robin over its
//! address(es), no `srv_conf`, no keepalive, so every request would open and
//! close a connection to the supervisor. Ferrocorn's workers keep
//! connections alive (`--keep-alive`, 75 s), so at postconfiguration each
//! implicit upstream gets nginx's own ngx_http_upstream_keepalive_module,
//! exactly as `keepalive N;` in an `upstream {}` block would: its
//! `keepalive` directive handler runs on the upstream, with
//! `ferrocorn_keepalive`'s value (default [`DEFAULT_MAX_CACHED`]), and the
//! `ferrocorn_keepalive_time/_timeout/_requests` values go where its twins'
//! stock slots would write them. An `upstream {}` block is the user's and
//! is left as written, with or without its `keepalive`.
//!
//! The one difference from a block: by postconfiguration the upstream
//! module has already run round robin's `init_upstream`, so the keepalive
//! module's "original" init is [`already_initialised`], and its own
//! `init_upstream` (defaults, `peer.init` wrap, cache slots) is called here.

use core::ffi::{c_char, c_void, CStr};
use core::{mem, ptr};

use ngx::ffi::{
    ngx_array_t, ngx_command_t, ngx_conf_t, ngx_http_conf_ctx_t, ngx_http_max_module,
    ngx_http_module_t, ngx_http_upstream_module, ngx_http_upstream_srv_conf_t, ngx_int_t,
    ngx_module_t, ngx_pcalloc, ngx_str_t, ngx_uint_t, NGX_HTTP_UPSTREAM_CREATE, NGX_LOG_EMERG,
};
use ngx::{ngx_conf_log_error, ngx_string};

use crate::config::KeepaliveConf;
use crate::ffi::{str_bytes, OK, UNSET_MSEC, UNSET_UINT};

/// Idle connections per nginx worker process when `ferrocorn_keepalive` is
/// not set: what the README and the benchmark give an `upstream {}` block.
pub const DEFAULT_MAX_CACHED: ngx_uint_t = 32;

/// Gives the implicit upstream `uscf` nginx's keepalive module, unless it
/// is an `upstream {}` block or `ferrocorn_keepalive off`. False (after
/// logging why) when nginx refuses.
///
/// # Safety
/// `cf` is the http block's conf at postconfiguration; `uscf` was returned
/// by `ngx_http_upstream_add` and its `init_upstream` has run.
pub unsafe fn apply(
    cf: *mut ngx_conf_t,
    ka: &KeepaliveConf,
    uscf: &mut ngx_http_upstream_srv_conf_t,
) -> bool {
    if uscf.flags & NGX_HTTP_UPSTREAM_CREATE as ngx_uint_t != 0 {
        return true; // an upstream {} block: the user's own keepalive, or none
    }
    let max_cached = match ka.max_cached {
        UNSET_UINT => DEFAULT_MAX_CACHED,
        n => n,
    };
    if max_cached == 0 {
        return true; // ferrocorn_keepalive off
    }
    // SAFETY: per the contract, cf and its cycle are live.
    let Some(kmod) = (unsafe { find_module(&*cf, c"ngx_http_upstream_keepalive_module") }) else {
        if ka.max_cached == UNSET_UINT {
            return true; // nginx built without it: the default quietly does without
        }
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "\"ferrocorn_keepalive\" needs ngx_http_upstream_keepalive_module, \
             which this nginx was built without"
        );
        return false;
    };
    // SAFETY: an HTTP module's ctx is its ngx_http_module_t.
    let kctx = unsafe { &*kmod.ctx.cast::<ngx_http_module_t>() };
    let (Some(create_srv_conf), Some(keepalive)) =
        (kctx.create_srv_conf, command(kmod, "keepalive"))
    else {
        return false;
    };
    // SAFETY: the keepalive module's own constructor, with the conf pool.
    let kcf = unsafe { create_srv_conf(cf) };
    if kcf.is_null() {
        return false;
    }
    // The srv_conf array an upstream {} block would have: the upstream
    // itself in the upstream module's slot, the keepalive conf in its own.
    // SAFETY: conf pool allocation, zeroed, one slot per HTTP module.
    let srv_conf = unsafe {
        ngx_pcalloc(
            (*cf).pool,
            ngx_http_max_module * mem::size_of::<*mut c_void>(),
        )
    }
    .cast::<*mut c_void>();
    if srv_conf.is_null() {
        return false;
    }
    // SAFETY: ctx_index < ngx_http_max_module for every HTTP module, set
    // before the http block was parsed.
    unsafe {
        *srv_conf.add(ngx_http_upstream_module.ctx_index) = ptr::from_mut(uscf).cast();
        *srv_conf.add(kmod.ctx_index) = kcf;
    }
    uscf.srv_conf = srv_conf;

    // The twins, where the stock slots of `keepalive_time/_timeout/_requests`
    // write (their offsets in the keepalive module's table). Unset ones keep
    // nginx's defaults (1h, 60s, 1000), applied by its init_upstream.
    for (name, value) in [
        ("keepalive_time", ka.time),
        ("keepalive_timeout", ka.timeout),
        ("keepalive_requests", ka.requests),
    ] {
        if value == UNSET_MSEC {
            continue; // UNSET_MSEC == UNSET_UINT: both ngx_uint_t::MAX
        }
        if let Some(cmd) = command(kmod, name) {
            // SAFETY: a stock msec/num slot of the keepalive conf, an
            // ngx_uint_t wide (ngx_msec_t is ngx_uint_t).
            unsafe { *kcf.cast::<u8>().add(cmd.offset).cast::<ngx_uint_t>() = value };
        }
    }

    // `keepalive N;` as if inside the block: nginx's own handler records
    // the balancer's init (ours, below) and puts its own in front of it.
    uscf.peer.init_upstream = Some(already_initialised);
    let mut digits = [0u8; 20];
    let n = decimal(max_cached, &mut digits);
    let mut argv = [
        ngx_string!("keepalive"),
        ngx_str_t {
            len: n.len(),
            data: n.as_ptr().cast_mut(),
        },
    ];
    // SAFETY: cf->ctx is the http block's ctx at postconfiguration.
    let http_ctx = unsafe { &*(*cf).ctx.cast::<ngx_http_conf_ctx_t>() };
    let mut ctx = ngx_http_conf_ctx_t {
        main_conf: http_ctx.main_conf,
        srv_conf,
        loc_conf: http_ctx.loc_conf,
    };
    let mut args = ngx_array_t {
        elts: argv.as_mut_ptr().cast(),
        nelts: argv.len(),
        size: mem::size_of::<ngx_str_t>(),
        nalloc: argv.len(),
        // SAFETY: cf is live.
        pool: unsafe { (*cf).pool },
    };
    // SAFETY: a copy of the live conf; only ctx and args differ.
    let mut upstream_cf: ngx_conf_t = unsafe { ptr::read(cf) };
    upstream_cf.ctx = ptr::from_mut(&mut ctx).cast();
    upstream_cf.args = &mut args;
    let Some(set) = keepalive.set else {
        return false;
    };
    // SAFETY: the directive handler with a conf shaped as inside an
    // upstream {} block and the keepalive conf it expects; it reads the
    // arguments before returning and keeps none of them.
    let rv = unsafe { set(&mut upstream_cf, ptr::from_ref(keepalive).cast_mut(), kcf) };
    if !rv.is_null() {
        // SAFETY: a non-OK result of a directive handler is a C string.
        let why = unsafe { CStr::from_ptr(rv.cast::<c_char>()) };
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "\"ferrocorn_keepalive {}\" refused by nginx's keepalive module: {}",
            max_cached,
            why.to_string_lossy()
        );
        return false;
    }
    let Some(init_upstream) = uscf.peer.init_upstream else {
        return false;
    };
    // SAFETY: the keepalive module's init_upstream on the upstream it was
    // just configured for; it calls already_initialised, then wraps peer.init.
    unsafe { init_upstream(cf, uscf) == OK }
}

/// The "original" `init_upstream` the keepalive module calls first: round
/// robin's ran already, in the upstream module's init_main_conf.
unsafe extern "C" fn already_initialised(
    _cf: *mut ngx_conf_t,
    _us: *mut ngx_http_upstream_srv_conf_t,
) -> ngx_int_t {
    OK
}

/// The module named `name` among those this nginx has (static or loaded).
///
/// # Safety
/// `cf.cycle` is live, its module list complete (the http block is parsed).
unsafe fn find_module<'a>(cf: &ngx_conf_t, name: &CStr) -> Option<&'a ngx_module_t> {
    // SAFETY: per the contract; modules_n entries from modules.
    let modules =
        unsafe { core::slice::from_raw_parts((*cf.cycle).modules, (*cf.cycle).modules_n) };
    modules.iter().find_map(|&m| {
        // SAFETY: every entry is a live module record.
        let m = unsafe { &*m };
        // SAFETY: a module's name is a NUL-terminated static string.
        (!m.name.is_null() && unsafe { CStr::from_ptr(m.name) } == name).then_some(m)
    })
}

/// `module`'s directive named `name`.
fn command<'a>(module: &'a ngx_module_t, name: &str) -> Option<&'a ngx_command_t> {
    let mut cmd = module.commands;
    // SAFETY: a module's table ends with ngx_null_command (empty name).
    while !cmd.is_null() && unsafe { (*cmd).name.len } != 0 {
        // SAFETY: as above; names live with the module.
        let c = unsafe { &*cmd };
        // SAFETY: a static name of the module's table.
        if unsafe { str_bytes(&c.name) } == name.as_bytes() {
            return Some(c);
        }
        // SAFETY: not past the terminating entry.
        cmd = unsafe { cmd.add(1) };
    }
    None
}

/// `n` in decimal, in `buf` (configuration time: std's formatting will do).
fn decimal(n: ngx_uint_t, buf: &mut [u8; 20]) -> &[u8] {
    use std::io::Write;
    let mut rest = &mut buf[..];
    write!(rest, "{n}").expect("20 bytes hold any 64-bit number");
    let len = 20 - rest.len();
    &buf[..len]
}
