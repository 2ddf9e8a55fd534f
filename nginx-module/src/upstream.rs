//! The upstream callbacks after the request is sent, in the order nginx
//! calls them: `process_header` (the `response_head` frame into nginx's
//! header tables), then `reinit_request` on a retry, `abort_request` and
//! `finalize_request` at the end.

use ferrocorn_protocol::pb;
use ngx::ffi::{
    ngx_array_push, ngx_hash_find, ngx_hash_strlow, ngx_http_complex_value, ngx_http_request_t,
    ngx_http_upstream_header_t, ngx_http_upstream_main_conf_t, ngx_http_upstream_module,
    ngx_http_upstream_t, ngx_int_t, ngx_list_push, ngx_pnalloc, ngx_str_t, ngx_table_elt_t,
    NGX_HTTP_HEAD, NGX_HTTP_UPSTREAM_INVALID_HEADER, NGX_LOG_ERR,
};
use ngx::log::DebugMask;
use ngx::{ngx_log_debug, ngx_log_error};

use crate::config::LocConf;
use crate::ffi::{request_ctx, request_loc_conf, request_main_conf, span, AGAIN, ERROR, OK};
use crate::head::{self, Parsed};
use crate::module;
use crate::stream::{bare_end, ResponseStream};

const INVALID_HEADER: ngx_int_t = NGX_HTTP_UPSTREAM_INVALID_HEADER as ngx_int_t;

/// `u->process_header`: waits for the whole head frame in `u->buffer`,
/// then fills `u->headers_in` and leaves `u->buffer.pos` at the first
/// body-stream byte.
///
/// # Safety
/// Called by nginx with a live request whose upstream our handler set up.
pub unsafe extern "C" fn process_header(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes a live request with an upstream; nothing else
    // touches them while this callback runs.
    let (r, u) = unsafe { (&mut *r, &mut *(*r).upstream) };
    // SAFETY: the connection lives as long as the request.
    let log = unsafe { (*r.connection).log };
    // SAFETY: u->buffer.pos..last are the bytes read so far.
    let buf = unsafe { span(u.buffer.pos, u.buffer.last) };

    let (used, h) = match head::parse(buf) {
        Ok(Parsed::NeedMore) => return AGAIN,
        Ok(Parsed::Head { used, head }) => (used, head),
        Err(e) => {
            ngx_log_error!(NGX_LOG_ERR, log, "{}", e);
            return INVALID_HEADER;
        }
    };

    let status = h.status();
    u.headers_in.status_n = status as usize;
    // SAFETY: u->state is NULL or this attempt's state record.
    if let Some(state) = unsafe { u.state.as_mut() } {
        if state.status == 0 {
            state.status = status as usize;
        }
    }
    if let Some(len) = head::status_line_len(h.reason()) {
        // SAFETY: request pool allocation of `len` bytes.
        let data = unsafe { ngx_pnalloc(r.pool, len) }.cast::<u8>();
        if data.is_null() {
            return ERROR;
        }
        // SAFETY: `data` holds `len` bytes, ours alone.
        let out = unsafe { core::slice::from_raw_parts_mut(data, len) };
        head::write_status_line(status, h.reason(), out);
        u.headers_in.status_line.data = data;
        u.headers_in.status_line.len = len;
    }
    ngx_log_debug!(mask: DebugMask::Http, log, "ferrocorn status {}", status);

    for (name, value) in h.headers() {
        let rc = push_header(r, u, name, value);
        if rc != OK {
            return rc;
        }
    }

    // SAFETY: `used` <= the bytes in the buffer (parse consumed them).
    u.buffer.pos = unsafe { u.buffer.pos.add(used) };

    // A body-less response (HEAD, 204, 304) that nginx will finalize right
    // after the header: consume its response_end now, so the connection is
    // known to be idle and may be kept alive.
    let is_head = r.method == NGX_HTTP_HEAD as usize;
    let bare = head::is_header_only(is_head, status)
        .then(|| bare_end(&buf[used..]))
        .flatten();
    if let Some(close) = bare {
        // SAFETY: our handler set the ctx before the upstream started.
        if let Some(ctx) = unsafe { request_ctx::<ResponseStream>(r, module()) } {
            ctx.end_at_head(close);
            // SAFETY: the frame is the rest of the buffer (checked by bare_end).
            u.buffer.pos = unsafe { u.buffer.pos.add(buf.len() - used) };
            let reuse = u.headers_in.connection_close() == 0 && !close;
            u.set_keepalive(u32::from(reuse));
        }
    }
    OK
}

/// Adds one response header to `u->headers_in.headers` and runs nginx's
/// handler for it (Content-Type, Content-Length, Location, Set-Cookie,
/// X-Accel-*...), exactly as the uwsgi and fastcgi modules do.
fn push_header(
    r: &mut ngx_http_request_t,
    u: &mut ngx_http_upstream_t,
    name: &[u8],
    value: &[u8],
) -> ngx_int_t {
    // SAFETY: the upstream header list is initialised by upstream init.
    let h = unsafe { ngx_list_push(&mut u.headers_in.headers) }.cast::<ngx_table_elt_t>();
    // SAFETY: a fresh, aligned list slot for one ngx_table_elt_t.
    let Some(h) = (unsafe { h.as_mut() }) else {
        return ERROR;
    };
    // Zeroed, then filled: no stale `next` link (a field only nginx >= 1.23
    // has, so it is never named here).
    // SAFETY: all-zero is a valid, empty ngx_table_elt_t.
    *h = unsafe { core::mem::zeroed() };
    // key\0value\0lowercase-key, one pool allocation as in uwsgi.
    let size = name.len() + 1 + value.len() + 1 + name.len();
    // SAFETY: request pool allocation.
    let mem = unsafe { ngx_pnalloc(r.pool, size) }.cast::<u8>();
    if mem.is_null() {
        h.hash = 0;
        return ERROR;
    }
    // SAFETY: `mem` has `size` bytes; each copy stays inside its part.
    unsafe {
        let key = mem;
        let val = key.add(name.len() + 1);
        let low = val.add(value.len() + 1);
        core::ptr::copy_nonoverlapping(name.as_ptr(), key, name.len());
        *key.add(name.len()) = 0;
        core::ptr::copy_nonoverlapping(value.as_ptr(), val, value.len());
        *val.add(value.len()) = 0;
        h.key.data = key;
        h.key.len = name.len();
        h.value.data = val;
        h.value.len = value.len();
        h.lowcase_key = low;
        h.hash = ngx_hash_strlow(low, key, name.len());
    }

    // SAFETY: the upstream module's main conf exists in every http block.
    let umcf: &ngx_http_upstream_main_conf_t =
        unsafe { request_main_conf(r, &*core::ptr::addr_of!(ngx_http_upstream_module)) };
    let hash = (&umcf.headers_in_hash as *const ngx::ffi::ngx_hash_t).cast_mut();
    // SAFETY: lookup in nginx's read-only hash with the key just built.
    let hh = unsafe { ngx_hash_find(hash, h.hash, h.lowcase_key, h.key.len) }
        .cast::<ngx_http_upstream_header_t>();
    // SAFETY: a hit points at a static entry of ngx_http_upstream_headers_in.
    if let Some(hh) = unsafe { hh.as_ref() } {
        if let Some(handler) = hh.handler {
            // SAFETY: nginx's own handler with the entry's offset, called on
            // a header pushed into u->headers_in like nginx's modules do.
            let rc = unsafe { handler(r, h, hh.offset) };
            if rc != OK {
                return rc;
            }
        }
    }
    OK
}

/// `u->create_key`: the `ferrocorn_cache_key` value is the cache key.
///
/// # Safety
/// Called by nginx with a live request that has a cache (`r->cache`).
pub unsafe extern "C" fn create_key(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes a live request whose cache it just created.
    let r = unsafe { &mut *r };
    // SAFETY: as above.
    let key = unsafe { ngx_array_push(&mut (*r.cache).keys) }.cast::<ngx_str_t>();
    if key.is_null() {
        return ERROR;
    }
    // SAFETY: our handler only runs where our loc conf exists.
    let lcf: &LocConf = unsafe { request_loc_conf(r, module()) };
    let cv = (&lcf.cache_key as *const ngx::ffi::ngx_http_complex_value_t).cast_mut();
    // SAFETY: `key` is a fresh array slot; cv was compiled at configuration
    // time and is only read; the value is allocated in the request pool.
    if unsafe { ngx_http_complex_value(r, cv, key) } != OK {
        return ERROR;
    }
    OK
}

/// `u->reinit_request`: a retry against the next server starts the
/// response over (nginx itself resets headers_in and the request chain).
///
/// # Safety
/// Called by nginx with a live request whose upstream our handler set up.
pub unsafe extern "C" fn reinit_request(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes a live request.
    let r = unsafe { &mut *r };
    // SAFETY: our ctx slot holds a ResponseStream or NULL.
    if let Some(ctx) = unsafe { request_ctx::<ResponseStream>(r, module()) } {
        ctx.reset();
    }
    OK
}

/// `u->abort_request`.
///
/// # Safety
/// Called by nginx with a live request.
pub unsafe extern "C" fn abort_request(r: *mut ngx_http_request_t) {
    // SAFETY: nginx passes a live request with a live connection.
    let log = unsafe { (*(*r).connection).log };
    ngx_log_debug!(mask: DebugMask::Http, log, "abort ferrocorn request");
}

/// `u->finalize_request`.
///
/// # Safety
/// Called by nginx with a live request.
pub unsafe extern "C" fn finalize_request(r: *mut ngx_http_request_t, rc: ngx_int_t) {
    // SAFETY: nginx passes a live request with a live connection.
    let log = unsafe { (*(*r).connection).log };
    ngx_log_debug!(mask: DebugMask::Http, log, "finalize ferrocorn request rc={}", rc);
}

/// Log line for a worker `error` frame, mid-body or instead of a head.
pub fn worker_error_line(err: pb::Error) -> String {
    head::worker_error(err).to_string()
}
