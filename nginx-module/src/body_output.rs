//! `ferrocorn_request_buffering off`: the request body goes to the worker
//! while the client is still sending it.
//!
//! nginx then starts the upstream as soon as the request head is in
//! (`r->request_body_no_buffering`), sends the chain `create_request` built
//! (the `request_head` frame alone) and afterwards every piece of body it
//! reads, all through `u->output`. This module's output filter sits there,
//! like ngx_http_proxy_body_output_filter for chunked bodies: it passes the
//! head through, puts a `request_body` frame prefix before each body buffer
//! (linking nginx's buffer itself, no copy), turns the body's `last_buf`
//! into `request_end`, and hands the result to nginx's chain writer.

use core::ffi::c_void;
use core::mem;
use core::ptr;

use ferrocorn_protocol::body::{self, BodyKind, MAX_BODY_CHUNK, MAX_PREFIX_LEN};
use ngx::ffi::{
    ngx_chain_get_free_buf, ngx_chain_t, ngx_chain_update_chains, ngx_chain_writer,
    ngx_http_request_t, ngx_int_t, ngx_palloc, ngx_pcalloc, NGX_LOG_ERR,
};
use ngx::ngx_log_error;

use crate::body_frames::REQUEST_END_FRAME;
use crate::ffi::{buf_size, ERROR};
use crate::request::{link, static_buf};

/// State of one request's streamed body, in the request pool.
struct BodyOutput {
    /// The request, for its pool, log and upstream writer.
    r: *mut ngx_http_request_t,
    /// The first buffer nginx writes is create_request's head frame, which
    /// passes unframed.
    head_passed: bool,
    /// Prefix buffers ready for reuse, and those the writer still holds
    /// (nginx's free/busy pattern, so a long upload does not grow the pool).
    free: *mut ngx_chain_t,
    busy: *mut ngx_chain_t,
}

/// Marks our prefix buffers in the free/busy lists.
fn tag() -> *mut c_void {
    body_output_filter as *const () as *mut c_void
}

/// Puts the filter on `r->upstream->output`. `None` on allocation failure.
pub fn install(r: &mut ngx_http_request_t) -> Option<()> {
    // SAFETY: request pool allocation, zeroed: NULL chains, false flag.
    let ctx = unsafe { ngx_pcalloc(r.pool, mem::size_of::<BodyOutput>()) }.cast::<BodyOutput>();
    // SAFETY: fresh, zeroed storage for one BodyOutput (valid when zeroed).
    let ctx_ref = unsafe { ctx.as_mut() }?;
    ctx_ref.r = r;
    // SAFETY: r->upstream is live while create_request runs.
    let u = unsafe { &mut *r.upstream };
    u.output.output_filter = Some(body_output_filter);
    u.output.filter_ctx = ctx.cast();
    Some(())
}

/// `u->output.output_filter` for a streamed body.
///
/// # Safety
/// `data` is the [`BodyOutput`] [`install`] registered; `input` is NULL or
/// a chain nginx's output chain hands over.
unsafe extern "C" fn body_output_filter(data: *mut c_void, input: *mut ngx_chain_t) -> ngx_int_t {
    // SAFETY: install registered a live BodyOutput of a live request.
    let ctx = unsafe { &mut *data.cast::<BodyOutput>() };
    // SAFETY: the request and its upstream live while nginx sends its body.
    let r = unsafe { &mut *ctx.r };
    // SAFETY: as above.
    let u = unsafe { &mut *r.upstream };
    let pool = r.pool;

    let mut out: *mut ngx_chain_t = ptr::null_mut();
    let mut last: *mut *mut ngx_chain_t = &mut out;
    let mut push_link = |cl: *mut ngx_chain_t| {
        // SAFETY: `last` is the `next` slot of the chain's tail; cl is a
        // link of ours, not in any other chain.
        unsafe {
            (*cl).next = ptr::null_mut();
            *last = cl;
            last = &mut (*cl).next;
        }
    };

    let mut cl = input;
    if !ctx.head_passed && !cl.is_null() {
        ctx.head_passed = true;
        // SAFETY: a non-NULL link of nginx's chain.
        let head = unsafe { &*cl };
        let Some(l) = link(pool, head.buf) else {
            return ERROR;
        };
        push_link(l);
        cl = head.next;
    }

    // SAFETY: each link of nginx's chain is live while the filter runs.
    while let Some(link_ref) = unsafe { cl.as_ref() } {
        cl = link_ref.next;
        // SAFETY: a link of a well-formed chain holds a live buffer.
        let b = unsafe { &*link_ref.buf };
        let size = buf_size(b);
        if size > 0 {
            if size > MAX_BODY_CHUNK as u64 {
                // SAFETY: the connection lives as long as the request.
                let log = unsafe { (*r.connection).log };
                ngx_log_error!(
                    NGX_LOG_ERR,
                    log,
                    "ferrocorn body buffer of {} bytes exceeds one frame; lower client_body_buffer_size",
                    size
                );
                return ERROR;
            }
            let Some(prefix) = prefix_link(ctx, pool, size as usize) else {
                return ERROR;
            };
            push_link(prefix);
            let Some(l) = link(pool, link_ref.buf) else {
                return ERROR;
            };
            push_link(l);
        }
        if b.last_buf() != 0 {
            let Some(end) = static_buf(pool, &REQUEST_END_FRAME) else {
                return ERROR;
            };
            // SAFETY: `end` was just allocated from the pool.
            unsafe { (*end).set_flush(1) };
            let Some(l) = link(pool, end) else {
                return ERROR;
            };
            push_link(l);
        }
    }

    let writer = (&mut u.writer as *mut ngx::ffi::ngx_chain_writer_ctx_t).cast::<c_void>();
    // SAFETY: nginx's own writer for this upstream connection; `out` is a
    // chain of live pool buffers.
    let rc = unsafe { ngx_chain_writer(writer, out) };
    // SAFETY: our lists and the links just handed to the writer (which
    // keeps its own links to what it has not sent yet).
    unsafe { ngx_chain_update_chains(pool, &mut ctx.free, &mut ctx.busy, &mut out, tag()) };
    rc
}

/// A link holding a `request_body` frame prefix for `size` bytes, in a
/// reused buffer.
fn prefix_link(
    ctx: &mut BodyOutput,
    pool: *mut ngx::ffi::ngx_pool_t,
    size: usize,
) -> Option<*mut ngx_chain_t> {
    // SAFETY: the request pool and our own free list.
    let cl = unsafe { ngx_chain_get_free_buf(pool, &mut ctx.free) };
    // SAFETY: a non-NULL link from nginx holds a buffer.
    let b = unsafe { &mut *cl.as_ref()?.buf };
    if b.start.is_null() {
        // SAFETY: pool allocation; kept with the buffer for its reuses.
        let mem = unsafe { ngx_palloc(pool, MAX_PREFIX_LEN) }.cast::<u8>();
        if mem.is_null() {
            return None;
        }
        b.start = mem;
        // SAFETY: one past the end of the allocation.
        b.end = unsafe { mem.add(MAX_PREFIX_LEN) };
        b.set_temporary(1);
        b.tag = tag();
    }
    // SAFETY: the buffer owns MAX_PREFIX_LEN writable bytes from start.
    let room = unsafe { &mut *b.start.cast::<[u8; MAX_PREFIX_LEN]>() };
    let n = body::write_prefix(BodyKind::Request, size, room);
    b.pos = b.start;
    // SAFETY: n <= MAX_PREFIX_LEN.
    b.last = unsafe { b.start.add(n) };
    b.set_flush(1);
    Some(cl)
}
