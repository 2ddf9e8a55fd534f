//! `create_request`: the chain nginx writes to the worker.
//!
//! One pool buffer holds the `request_head` frame; then, for every piece of
//! the client body (memory or the temp file nginx spooled it to), a small
//! buffer with the body-frame prefix followed by a shallow copy of nginx's
//! own buffer narrowed to that piece; then the constant `request_end`.
//! Nothing of the body is copied.

use core::mem;

use ferrocorn_protocol::body::{self, BodyKind, MAX_PREFIX_LEN};
use ferrocorn_protocol::request_head::{encode_frame, HeadFields};
use ngx::ffi::{
    ngx_alloc_chain_link, ngx_buf_t, ngx_chain_t, ngx_connection_local_sockaddr,
    ngx_create_temp_buf, ngx_http_complex_value, ngx_http_core_module, ngx_http_core_srv_conf_t,
    ngx_http_request_t, ngx_inet_get_port, ngx_int_t, ngx_palloc, ngx_pcalloc, ngx_pool_t,
    ngx_str_t, NGX_LOG_ERR,
};
use ngx::ngx_log_error;

use crate::body_frames::{body_pieces, REQUEST_END_FRAME};
use crate::config::{LocConf, ParamConf};
use crate::ffi::{
    buf_in_memory, buf_size, chain_bufs, request_loc_conf, request_srv_conf, str_bytes, table_elts,
    ERROR, OK,
};
use crate::{body_output, module};

/// `u->create_request`.
///
/// # Safety
/// Called by nginx with a live request whose upstream our handler set up;
/// `u->request_bufs` holds the client body chain (or NULL).
pub unsafe extern "C" fn create_request(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes a live request with an upstream; nothing else
    // touches them while this callback runs.
    let r = unsafe { &mut *r };
    match build_chain(r) {
        Some(chain) => {
            // SAFETY: r->upstream is live (see above).
            unsafe { (*r.upstream).request_bufs = chain };
            OK
        }
        None => ERROR,
    }
}

/// Builds head, body pieces and end; `None` on allocation failure or a
/// head too large for one frame (both logged by nginx as a 500).
///
/// With `ferrocorn_request_buffering off` the chain is the head alone: nginx
/// sends the body as it arrives, through [`body_output`]'s filter, which
/// frames each piece and adds `request_end`.
fn build_chain(r: &mut ngx_http_request_t) -> Option<*mut ngx_chain_t> {
    let pool = r.pool;
    // SAFETY: our handler only runs where our loc conf exists.
    let lcf: &LocConf = unsafe { request_loc_conf(r, module()) };
    let pass_body = lcf.upstream.pass_request_body != 0;
    let body = if pass_body {
        // SAFETY: r->upstream is live; request_bufs is the client body chain
        // nginx built, live in the request pool.
        unsafe { (*r.upstream).request_bufs }
    } else {
        core::ptr::null_mut()
    };
    // A request that announced no body (no Content-Length, not chunked)
    // has no CONTENT_LENGTH; otherwise the body nginx read is the truth.
    let announced = !r.headers_in.content_length.is_null() || r.headers_in.chunked() != 0;
    let streamed = r.request_body_no_buffering() != 0;
    let content_length = if !pass_body || r.request_body.is_null() || !announced {
        -1
    } else if streamed {
        // Known only when the client sent Content-Length (not chunked).
        if r.headers_in.chunked() != 0 {
            -1
        } else {
            r.headers_in.content_length_n
        }
    } else {
        // SAFETY: as above.
        unsafe { chain_bufs(body) }.map(buf_size).sum::<u64>() as i64
    };

    let head = head_buf(r, lcf, content_length)?;
    let first = link(pool, head)?;
    if streamed {
        // SAFETY: head is the pool buffer just built.
        unsafe { (*head).set_flush(1) };
        body_output::install(r)?;
        return Some(first);
    }
    let mut last = first;

    // SAFETY: as above; the chain is not relinked while we walk it.
    for orig in unsafe { chain_bufs(body) } {
        for (offset, size) in body_pieces(buf_size(orig)) {
            let mut prefix_bytes = [0u8; MAX_PREFIX_LEN];
            let n = body::write_prefix(BodyKind::Request, size, &mut prefix_bytes);
            let prefix = temp_buf(pool, &prefix_bytes[..n])?;
            let piece = narrowed_copy(pool, orig, offset, size)?;
            last = append(pool, last, prefix)?;
            last = append(pool, last, piece)?;
        }
    }

    let end = static_buf(pool, &REQUEST_END_FRAME)?;
    // SAFETY: `end` was just allocated from the pool.
    unsafe { (*end).set_flush(1) };
    append(pool, last, end)?;
    Some(first)
}

/// Request headers the worker must not see when nginx caches the response:
/// nginx needs a full 200 to store and answers conditional and range
/// requests itself (uwsgi's `ngx_http_uwsgi_cache_headers`).
const CACHE_STRIPPED_HEADERS: [&[u8]; 6] = [
    b"if-modified-since",
    b"if-unmodified-since",
    b"if-none-match",
    b"if-match",
    b"range",
    b"if-range",
];

/// Whether a request header goes into the head frame: all of them unless
/// `ferrocorn_pass_request_headers off` (then only Content-Type and
/// Content-Length, which the worker maps to CGI variables), minus the
/// conditional ones when the response may be cached.
fn header_passes(name: &[u8], pass_headers: bool, cacheable: bool) -> bool {
    if !pass_headers
        && !name.eq_ignore_ascii_case(b"content-type")
        && !name.eq_ignore_ascii_case(b"content-length")
    {
        return false;
    }
    !(cacheable
        && CACHE_STRIPPED_HEADERS
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h)))
}

/// A field value without the optional whitespace (SP / HTAB) around it
/// (RFC 9110 5.5): nginx trims spaces but leaves tabs.
fn trim_ows(value: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !ows(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
    &value[start..end]
}

/// The `request_head` frame in one pool buffer, encoded in one pass over
/// the headers: the buffer is sized by a bound read off the header
/// lengths, and the frame ends up a few bytes into it.
fn head_buf(r: &ngx_http_request_t, lcf: &LocConf, content_length: i64) -> Option<*mut ngx_buf_t> {
    // SAFETY: the connection lives as long as the request.
    let c = unsafe { &mut *r.connection };
    // SAFETY: every HTTP request has the core module's srv conf.
    let cscf: &ngx_http_core_srv_conf_t =
        unsafe { request_srv_conf(r, &*core::ptr::addr_of!(ngx_http_core_module)) };
    let pass_headers = lcf.upstream.pass_request_headers != 0;
    // SAFETY: r->upstream is live while create_request runs.
    let cacheable = unsafe { (*r.upstream).cacheable() } != 0;
    let params = eval_params(r, lcf)?;

    // $server_port: the local address, asked of the kernel once if needed.
    // SAFETY: c is live; nginx caches the address in c->local_sockaddr.
    let server_port = if unsafe { ngx_connection_local_sockaddr(c, core::ptr::null_mut(), 0) } == OK
    {
        // SAFETY: set by the call above.
        unsafe { ngx_inet_get_port(c.local_sockaddr) }
    } else {
        0
    };
    // SAFETY: c->sockaddr is the client's address, set at accept.
    let remote_port = unsafe { ngx_inet_get_port(c.sockaddr) };

    // SAFETY: every str_bytes below reads a request string, which lives in
    // the request pool for the whole request.
    let fields = unsafe {
        HeadFields {
            method: str_bytes(&r.method_name),
            uri: str_bytes(&r.unparsed_uri),
            path: str_bytes(&r.uri),
            query_string: str_bytes(&r.args),
            protocol: str_bytes(&r.http_protocol),
            // $server_name, or the Host the client asked for when the
            // server block names none: SERVER_NAME is never empty.
            server_name: match str_bytes(&cscf.server_name) {
                b"" => str_bytes(&r.headers_in.server),
                name => name,
            },
            server_port: u32::from(server_port),
            remote_addr: str_bytes(&c.addr_text),
            remote_port: u32::from(remote_port),
            scheme: if c.ssl.is_null() { b"http" } else { b"https" },
            content_length,
        }
    };

    // SAFETY: the header list belongs to the live request and is not
    // modified while we read it; its strings live in the request pool.
    let all_headers = || unsafe { table_elts(&r.headers_in.headers) };
    let (mut pairs, mut pair_bytes) = (params.len(), 0);
    for h in all_headers() {
        pairs += 1;
        pair_bytes += h.key.len + h.value.len;
    }
    pair_bytes += params.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>();
    let bound = fields.buffer_bound(pairs, pair_bytes);

    // SAFETY: pool allocation; the buffer lives as long as the request.
    let b = unsafe { ngx_create_temp_buf(r.pool, bound) };
    // SAFETY: a fresh temp buf of `bound` bytes starting at pos.
    let b_ref = unsafe { b.as_mut() }?;
    // SAFETY: the buffer holds `bound` writable bytes at pos, ours alone.
    let out = unsafe { core::slice::from_raw_parts_mut(b_ref.pos, bound) };
    let headers = all_headers()
        // SAFETY: as above.
        .map(|h| unsafe { (str_bytes(&h.key), trim_ows(str_bytes(&h.value))) })
        .filter(|(name, _)| header_passes(name, pass_headers, cacheable));
    let frame = match encode_frame(out, &fields, headers, params.iter().copied()) {
        Ok(frame) => frame,
        Err(e) => {
            ngx_log_error!(NGX_LOG_ERR, c.log, "ferrocorn request head not sent: {}", e);
            return None;
        }
    };
    // SAFETY: the frame lies within the buffer just filled. `start` moves
    // with `pos`: nginx resets `pos` to `start` on a retry.
    unsafe {
        b_ref.pos = b_ref.pos.add(frame.start);
        b_ref.start = b_ref.pos;
        b_ref.last = b_ref.pos.add(frame.len());
    }
    Some(b)
}

/// Evaluates the `ferrocorn_param` values of this location, skipping empty
/// `if_not_empty` ones. Values are allocated in the request pool.
fn eval_params<'a>(r: &ngx_http_request_t, lcf: &'a LocConf) -> Option<Vec<(&'a [u8], &'a [u8])>> {
    // SAFETY: `params` is NULL or an array of ParamConf built at config time.
    let params: &[ParamConf] = match unsafe { lcf.params.as_ref() } {
        None => &[],
        // SAFETY: as above.
        Some(a) => unsafe { a.as_slice() },
    };
    let rp = (r as *const ngx_http_request_t).cast_mut();
    let mut out = Vec::with_capacity(params.len());
    for p in params {
        let mut value = ngx_str_t {
            len: 0,
            data: core::ptr::null_mut(),
        };
        let cv = (&p.value as *const ngx::ffi::ngx_http_complex_value_t).cast_mut();
        // SAFETY: r is live; cv was compiled for this configuration and is
        // only read; the result is allocated in the request pool.
        if unsafe { ngx_http_complex_value(rp, cv, &mut value) } != OK {
            return None;
        }
        if p.skip_empty && value.len == 0 {
            continue;
        }
        // SAFETY: name lives in the conf pool, value in the request pool.
        out.push(unsafe { (str_bytes(&p.name), str_bytes(&value)) });
    }
    Some(out)
}

/// A shallow copy of `orig` narrowed to `size` bytes at `offset`: memory
/// and file positions move together, `start` moves with `pos` (nginx resets
/// `pos` to `start` on a retry), and end-of-body flags are cleared.
fn narrowed_copy(
    pool: *mut ngx_pool_t,
    orig: &ngx_buf_t,
    offset: u64,
    size: usize,
) -> Option<*mut ngx_buf_t> {
    // SAFETY: pool allocation of one buffer, fully initialised by the write.
    let b = unsafe { ngx_palloc(pool, mem::size_of::<ngx_buf_t>()) }.cast::<ngx_buf_t>();
    if b.is_null() {
        return None;
    }
    let mut copy = *orig;
    if buf_in_memory(orig) {
        // SAFETY: offset + size lies within pos..last (body_pieces of buf_size).
        copy.pos = unsafe { orig.pos.add(offset as usize) };
        // SAFETY: as above.
        copy.last = unsafe { copy.pos.add(size) };
        copy.start = copy.pos;
    }
    if orig.in_file() != 0 {
        copy.file_pos = orig.file_pos + offset as i64;
        copy.file_last = copy.file_pos + size as i64;
    }
    copy.set_last_buf(0);
    copy.set_last_in_chain(0);
    copy.set_flush(0);
    copy.shadow = core::ptr::null_mut();
    // SAFETY: b is fresh, aligned storage for one ngx_buf_t.
    unsafe { b.write(copy) };
    Some(b)
}

/// A temp buffer holding a copy of `bytes`.
fn temp_buf(pool: *mut ngx_pool_t, bytes: &[u8]) -> Option<*mut ngx_buf_t> {
    // SAFETY: pool allocation; the buffer has room for `bytes`.
    let b = unsafe { ngx_create_temp_buf(pool, bytes.len()) };
    // SAFETY: fresh buffer from the pool.
    let b_ref = unsafe { b.as_mut() }?;
    // SAFETY: `bytes.len()` bytes of room at pos; the regions are distinct.
    unsafe {
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), b_ref.pos, bytes.len());
        b_ref.last = b_ref.pos.add(bytes.len());
    }
    Some(b)
}

/// A read-only memory buffer over static bytes.
pub(crate) fn static_buf(pool: *mut ngx_pool_t, bytes: &'static [u8]) -> Option<*mut ngx_buf_t> {
    // SAFETY: zeroed pool allocation is an empty buffer.
    let b = unsafe { ngx_pcalloc(pool, mem::size_of::<ngx_buf_t>()) }.cast::<ngx_buf_t>();
    // SAFETY: fresh, zeroed buffer.
    let b_ref = unsafe { b.as_mut() }?;
    // `memory` marks the bytes read-only: nginx never writes through them.
    b_ref.set_memory(1);
    b_ref.start = bytes.as_ptr().cast_mut();
    b_ref.pos = b_ref.start;
    // SAFETY: one past the end of the static slice.
    b_ref.last = unsafe { b_ref.start.add(bytes.len()) };
    b_ref.end = b_ref.last;
    Some(b)
}

/// A new chain link holding `b`.
pub(crate) fn link(pool: *mut ngx_pool_t, b: *mut ngx_buf_t) -> Option<*mut ngx_chain_t> {
    // SAFETY: pool allocation of one link.
    let cl = unsafe { ngx_alloc_chain_link(pool) };
    // SAFETY: fresh link from the pool.
    let cl_ref = unsafe { cl.as_mut() }?;
    cl_ref.buf = b;
    cl_ref.next = core::ptr::null_mut();
    Some(cl)
}

/// Links `b` after `last`; returns the new last link.
fn append(
    pool: *mut ngx_pool_t,
    last: *mut ngx_chain_t,
    b: *mut ngx_buf_t,
) -> Option<*mut ngx_chain_t> {
    let cl = link(pool, b)?;
    // SAFETY: `last` is the live tail link of the chain being built.
    unsafe { (*last).next = cl };
    Some(cl)
}
