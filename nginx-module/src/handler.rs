//! The content handler of a `ferrocorn_pass` location: sets up nginx's
//! upstream machinery with the module's callbacks, then lets nginx read the
//! client body (all of it first, or streamed with
//! `ferrocorn_request_buffering off`) and connect (`ngx_http_upstream_init`).

use core::mem;

use ngx::core::Pool;
use ngx::ffi::{
    ngx_event_pipe_t, ngx_http_read_client_request_body, ngx_http_request_t,
    ngx_http_upstream_create, ngx_http_upstream_init, ngx_int_t, ngx_pcalloc,
    NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_SPECIAL_RESPONSE,
};
use ngx::ngx_string;

use crate::config::{LocConf, MainConf};
use crate::ffi::{request_loc_conf, request_main_conf, set_request_ctx, DONE, OK};
use crate::stream::ResponseStream;
use crate::{filter, module, request, upstream};

const INTERNAL_ERROR: ngx_int_t = NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;

/// `clcf->handler` of every location with `ferrocorn_pass`.
///
/// # Safety
/// Called by nginx in the content phase with a live request.
pub unsafe extern "C" fn ferrocorn_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes a live request; upstream_create fills r->upstream.
    if unsafe { ngx_http_upstream_create(r) } != OK {
        return INTERNAL_ERROR;
    }
    // SAFETY: r is live and now has an upstream.
    let (r_ref, u) = unsafe { (&mut *r, &mut *(*r).upstream) };
    let m = module();

    // The response state, dropped (parser buffers freed) with the pool.
    // SAFETY: the request pool outlives every callback of this request.
    let pool = unsafe { Pool::from_ngx_pool(r_ref.pool) };
    let ctx = pool.allocate(ResponseStream::new());
    if ctx.is_null() {
        return INTERNAL_ERROR;
    }
    // SAFETY: our ctx slot; ctx lives as long as the request.
    unsafe { set_request_ctx(r_ref, m, ctx) };

    // SAFETY: this handler is only installed where our loc conf exists.
    let lcf: &LocConf = unsafe { request_loc_conf(r_ref, m) };

    u.schema = ngx_string!("ferrocorn://");
    u.output.tag = (m as *const ngx::ffi::ngx_module_t).cast_mut().cast();
    u.conf = (&lcf.upstream as *const ngx::ffi::ngx_http_upstream_conf_t).cast_mut();

    u.create_request = Some(request::create_request);
    u.reinit_request = Some(upstream::reinit_request);
    u.process_header = Some(upstream::process_header);
    u.abort_request = Some(upstream::abort_request);
    u.finalize_request = Some(upstream::finalize_request);

    u.set_buffering(u32::from(lcf.upstream.buffering != 0));

    // Cache zones declared by ferrocorn_cache_path, and the cache key.
    // SAFETY: our main conf exists in every http block that loads the module.
    let mcf: &MainConf = unsafe { request_main_conf(r_ref, m) };
    u.caches = (&mcf.caches as *const ngx::ffi::ngx_array_t).cast_mut();
    u.create_key = Some(upstream::create_key);

    // SAFETY: pool allocation of a zeroed event pipe, as every upstream module does.
    let pipe = unsafe { ngx_pcalloc(r_ref.pool, mem::size_of::<ngx_event_pipe_t>()) }
        .cast::<ngx_event_pipe_t>();
    // SAFETY: zeroed memory is the pipe's initial state.
    let Some(pipe) = (unsafe { pipe.as_mut() }) else {
        return INTERNAL_ERROR;
    };
    pipe.input_filter = Some(filter::pipe_input_filter);
    pipe.input_ctx = r.cast();
    u.pipe = pipe;

    u.input_filter_init = Some(filter::input_filter_init);
    u.input_filter = Some(filter::non_buffered_filter);
    u.input_filter_ctx = r.cast();

    // ferrocorn_request_buffering off: the upstream starts once the head is
    // in and the body follows as it arrives (body_output.rs). Frames carry
    // their lengths, so chunked bodies stream too.
    if lcf.upstream.request_buffering == 0 && lcf.upstream.pass_request_body != 0 {
        r_ref.set_request_body_no_buffering(1);
    }

    // Otherwise the whole body is read (memory or temp file) first.
    // SAFETY: r is live; nginx calls ngx_http_upstream_init when the body
    // is in (or, streamed, when reading it has started).
    let rc = unsafe { ngx_http_read_client_request_body(r, Some(ngx_http_upstream_init)) };
    if rc >= NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t {
        return rc;
    }
    DONE
}
