//! The response body filters, shaped like ngx_http_fastcgi_module's: the
//! event-pipe filter (`ferrocorn_buffering on`) and the non-buffered one
//! (`off`). Both run [`ResponseStream::scan`] over the bytes nginx read and
//! link one nginx buffer per body range, pointing into the upstream buffer
//! (no copy).
//!
//! Until `response_end` the filters keep the expected length positive
//! (`u->length` / `p->length` = 1) rather than -1: with -1 nginx would take
//! the worker closing the connection for a complete response, and the event
//! pipe would hold a partly filled buffer (possibly holding `response_end`)
//! until the worker closed its kept-alive connection.

use ngx::ffi::{
    ngx_buf_t, ngx_chain_get_free_buf, ngx_chain_t, ngx_event_pipe_add_free_buf, ngx_event_pipe_t,
    ngx_http_request_t, ngx_http_upstream_t, ngx_int_t, ngx_log_t, NGX_LOG_ERR, NGX_LOG_WARN,
};
use ngx::ngx_log_error;

use crate::ffi::{request_ctx, span, ERROR, OK};
use crate::module;
use crate::stream::{ResponseStream, ScanEnd, StreamState};
use crate::upstream::worker_error_line;

/// What a filter does once a read has been scanned.
#[derive(Debug, PartialEq, Eq)]
enum Settled {
    /// The body goes on.
    More,
    /// `response_end` was seen.
    Done,
    /// Stop: nginx closes the upstream connection and cuts the response.
    Fail,
}

/// Logs what needs logging and decides the keepalive of the connection.
fn settle(end: ScanEnd, log: *mut ngx_log_t, u: &mut ngx_http_upstream_t) -> Settled {
    match end {
        ScanEnd::NeedMore => Settled::More,
        ScanEnd::End { trailing: 0, close } => {
            // The worker closes after a response_end flagged `close`: never
            // hand that connection to the next request.
            let reuse = u.headers_in.connection_close() == 0 && !close;
            u.set_keepalive(u32::from(reuse));
            Settled::Done
        }
        ScanEnd::End { trailing, .. } => {
            ngx_log_error!(
                NGX_LOG_WARN,
                log,
                "upstream sent data after response_end ({} bytes)",
                trailing
            );
            u.set_keepalive(0);
            Settled::Done
        }
        ScanEnd::WorkerError(err) => {
            ngx_log_error!(NGX_LOG_ERR, log, "{}", worker_error_line(err));
            Settled::Fail
        }
        ScanEnd::Invalid(e) => {
            ngx_log_error!(NGX_LOG_ERR, log, "upstream sent invalid frame: {}", e);
            Settled::Fail
        }
        ScanEnd::AfterFailure => Settled::Fail,
    }
}

/// `u->input_filter_init`, called once the header is sent.
///
/// # Safety
/// `data` is the request nginx registered as `input_filter_ctx`.
pub unsafe extern "C" fn input_filter_init(data: *mut core::ffi::c_void) -> ngx_int_t {
    // SAFETY: our handler registered the live request as the filter ctx.
    let r = unsafe { &mut *data.cast::<ngx_http_request_t>() };
    // SAFETY: the request has the upstream our handler created.
    let u = unsafe { &mut *r.upstream };
    // SAFETY: our ctx slot holds the ResponseStream our handler set.
    let Some(ctx) = (unsafe { request_ctx::<ResponseStream>(r, module()) }) else {
        return ERROR;
    };
    // 0: complete already (response_end came with the head); 1: more expected.
    let length = if ctx.state() == StreamState::Ended {
        0
    } else {
        1
    };
    u.length = length;
    // SAFETY: the handler allocated the pipe.
    if let Some(p) = unsafe { u.pipe.as_mut() } {
        p.length = length;
        if length == 0 {
            p.set_upstream_done(1);
        }
    }
    OK
}

/// `p->input_filter` (buffering on): turns one raw buffer read from the
/// worker into shadow buffers of body data, as fastcgi_input_filter does.
///
/// # Safety
/// Called by nginx's event pipe with our pipe and a raw buffer it read.
pub unsafe extern "C" fn pipe_input_filter(
    p: *mut ngx_event_pipe_t,
    buf: *mut ngx_buf_t,
) -> ngx_int_t {
    // SAFETY: nginx passes its live pipe; input_ctx is the request our
    // handler registered. The raw buffer `buf` is only used through its
    // pointer: its shadow links are written while it is being read.
    let p = unsafe { &mut *p };
    // SAFETY: `buf` is one of the pipe's live raw buffers.
    let (pos, last, raw_start, raw_end, raw_num) = unsafe {
        (
            (*buf).pos,
            (*buf).last,
            (*buf).start,
            (*buf).end,
            (*buf).num,
        )
    };
    if pos == last {
        return OK;
    }
    // SAFETY: as above.
    let r = unsafe { &mut *p.input_ctx.cast::<ngx_http_request_t>() };
    // SAFETY: the request's upstream is live while its pipe runs.
    let u = unsafe { &mut *r.upstream };
    // SAFETY: our ctx slot holds the ResponseStream our handler set.
    let Some(ctx) = (unsafe { request_ctx::<ResponseStream>(r, module()) }) else {
        return ERROR;
    };

    // Where the next shadow buffer is linked from: first the raw buffer's
    // `shadow`, then each shadow's own (nginx's shadow chain).
    // SAFETY: `buf` is live (see above).
    let mut prev: *mut *mut ngx_buf_t = unsafe { core::ptr::addr_of_mut!((*buf).shadow) };
    let mut last_b: *mut ngx_buf_t = core::ptr::null_mut();
    // SAFETY: pos..last are the bytes nginx just read into this buffer.
    let input = unsafe { span(pos, last) };

    let end = ctx.scan(input, |range| {
        // SAFETY: p->pool and p->free are the pipe's own.
        let cl = unsafe { ngx_chain_get_free_buf(p.pool, &mut p.free) };
        // SAFETY: a non-NULL link from nginx holds a buffer.
        let Some(cl_ref) = (unsafe { cl.as_mut() }) else {
            return Err(());
        };
        // SAFETY: the link's buffer is ours until handed to the pipe.
        let b = unsafe { &mut *cl_ref.buf };
        // SAFETY: plain data; all-zero is an empty buffer.
        *b = unsafe { core::mem::zeroed() };
        // SAFETY: the range lies inside pos..last of the raw buffer.
        unsafe {
            b.pos = pos.add(range.start);
            b.last = pos.add(range.end);
        }
        b.start = raw_start;
        b.end = raw_end;
        b.tag = p.tag;
        b.set_temporary(1);
        b.set_recycled(1);
        // SAFETY: `prev` points at the raw buffer's or the previous shadow's link.
        unsafe { *prev = b };
        prev = &mut b.shadow;
        // Append to the pipe's input chain.
        if p.in_.is_null() {
            p.in_ = cl;
        } else {
            // SAFETY: last_in points at the `next` of the last input link.
            unsafe { *p.last_in = cl };
        }
        p.last_in = &mut cl_ref.next;
        b.num = raw_num;
        last_b = b;
        Ok(())
    });
    let Ok(end) = end else {
        return ERROR;
    };

    let log = p.log;
    match settle(end, log, u) {
        Settled::More => {}
        Settled::Done => p.set_upstream_done(1),
        Settled::Fail => return ERROR,
    }

    // SAFETY: `last_b` is NULL or the last shadow buffer linked above.
    if let Some(b) = unsafe { last_b.as_mut() } {
        b.shadow = buf;
        b.set_last_shadow(1);
        return OK;
    }
    // No body bytes in this buffer: give it back to the pipe.
    // SAFETY: p and the raw buffer are nginx's; the buffer is not referenced.
    if unsafe { ngx_event_pipe_add_free_buf(p, buf) } != OK {
        return ERROR;
    }
    OK
}

/// `u->input_filter` (buffering off): appends one memory buffer per body
/// range of the `bytes` just read to `u->out_bufs`, as
/// fastcgi_non_buffered_filter does.
///
/// # Safety
/// `data` is the request nginx registered as `input_filter_ctx`; `bytes`
/// were just read at `u->buffer.last`.
pub unsafe extern "C" fn non_buffered_filter(
    data: *mut core::ffi::c_void,
    bytes: isize,
) -> ngx_int_t {
    // SAFETY: our handler registered the live request as the filter ctx.
    let r = unsafe { &mut *data.cast::<ngx_http_request_t>() };
    // SAFETY: the request has the upstream our handler created.
    let u = unsafe { &mut *r.upstream };
    // SAFETY: our ctx slot holds the ResponseStream our handler set.
    let Some(ctx) = (unsafe { request_ctx::<ResponseStream>(r, module()) }) else {
        return ERROR;
    };

    let b = &mut u.buffer;
    b.pos = b.last;
    // SAFETY: nginx read `bytes` bytes at `last`, inside the buffer.
    b.last = unsafe { b.last.offset(bytes) };
    let pos = b.pos;
    // SAFETY: the bytes just read.
    let input = unsafe { span(b.pos, b.last) };

    // Find the tail of the pending output chain.
    let mut ll: *mut *mut ngx_chain_t = &mut u.out_bufs;
    // SAFETY: out_bufs is a well-formed chain owned by the upstream.
    unsafe {
        while let Some(cl) = (*ll).as_mut() {
            ll = &mut cl.next;
        }
    }

    let pool = r.pool;
    let tag = u.output.tag;
    let free: *mut *mut ngx_chain_t = &mut u.free_bufs;
    let end = ctx.scan(input, |range| {
        // SAFETY: the request pool and the upstream's free list.
        let cl = unsafe { ngx_chain_get_free_buf(pool, free) };
        // SAFETY: a non-NULL link from nginx holds a buffer.
        let Some(cl_ref) = (unsafe { cl.as_mut() }) else {
            return Err(());
        };
        // SAFETY: the link is ours until appended below.
        let b = unsafe { &mut *cl_ref.buf };
        b.set_flush(1);
        b.set_memory(1);
        // SAFETY: the range lies inside the bytes just read.
        unsafe {
            b.pos = pos.add(range.start);
            b.last = pos.add(range.end);
        }
        b.tag = tag;
        // SAFETY: `ll` is the `next` slot of the chain's tail.
        unsafe { *ll = cl };
        ll = &mut cl_ref.next;
        Ok(())
    });
    let Ok(end) = end else {
        return ERROR;
    };

    // SAFETY: the connection lives as long as the request.
    let log = unsafe { (*r.connection).log };
    match settle(end, log, u) {
        Settled::More => OK,
        Settled::Done => {
            // Tells nginx the response is complete.
            u.length = 0;
            OK
        }
        Settled::Fail => ERROR,
    }
}
