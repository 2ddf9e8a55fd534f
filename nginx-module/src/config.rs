//! The location configuration: nginx's own upstream settings embedded
//! first, then the module's `ferrocorn_param` list.
//!
//! Like ngx_http_uwsgi_module: `create_loc_conf` marks every field unset,
//! `merge_loc_conf` holds every default in one place. The stock
//! `ngx_conf_set_*_slot` setters write into [`LocConf::upstream`] by offset
//! (see the directive table in `lib.rs`).

use core::ffi::{c_char, c_void};
use core::mem;
use core::ptr;

use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_array_t, ngx_conf_merge_path_value, ngx_conf_t, ngx_hash_init_t, ngx_http_complex_value_t,
    ngx_http_core_loc_conf_t, ngx_http_upstream_conf_t, ngx_http_upstream_hide_headers_hash,
    ngx_path_init_t, ngx_pcalloc, ngx_str_t, ngx_uint_t, NGX_CONF_BITMASK_SET,
    NGX_HTTP_UPSTREAM_FT_ERROR, NGX_HTTP_UPSTREAM_FT_OFF, NGX_HTTP_UPSTREAM_FT_TIMEOUT,
    NGX_LOG_EMERG,
};
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};
use ngx::{ngx_conf_log_error, ngx_string};

use crate::ffi::{unset_ptr, UNSET_FLAG, UNSET_MSEC, UNSET_SIZE, UNSET_UINT};
use crate::merge::{
    align, derived, merge_bitmask, merge_bufs, merge_flag, merge_msec, merge_ptr, merge_size,
    merge_uint,
};

/// Per-location settings.
#[repr(C)]
pub struct LocConf {
    /// nginx's upstream settings (timeouts, buffers, temp path, hidden
    /// headers, the `ferrocorn_pass` target in `upstream.upstream`).
    pub upstream: ngx_http_upstream_conf_t,
    /// `ferrocorn_param` entries of this level ([`ParamConf`] items), or
    /// NULL when the level has none (it then inherits its parent's).
    pub params: *mut ngx_array_t,
}

/// One `ferrocorn_param NAME VALUE [if_not_empty]`.
#[repr(C)]
pub struct ParamConf {
    /// Environ key, sent as is.
    pub name: ngx_str_t,
    /// The value, variables compiled once at configuration time.
    pub value: ngx_http_complex_value_t,
    /// `if_not_empty`: omit the param when the value evaluates to "".
    pub skip_empty: bool,
}

/// `create_loc_conf`: every field unset, so that merge can tell "not
/// configured here" from a configured value.
///
/// # Safety
/// Called by nginx with a valid `cf`.
pub unsafe extern "C" fn create_loc_conf(cf: *mut ngx_conf_t) -> *mut c_void {
    // SAFETY: nginx passes a live conf whose pool outlives the configuration.
    let conf = unsafe { ngx_pcalloc((*cf).pool, mem::size_of::<LocConf>()) }.cast::<LocConf>();
    // SAFETY: freshly allocated, zeroed and sized for a LocConf; all-zero is
    // a valid bit pattern for its integer and pointer fields.
    let Some(conf) = (unsafe { conf.as_mut() }) else {
        return ptr::null_mut();
    };
    // Left zero by pcalloc: bufs.num, ignore_headers, next_upstream,
    // temp_path, hide_headers_hash, cache and store (off), params.
    let u = &mut conf.upstream;
    u.next_upstream_tries = UNSET_UINT;
    u.buffering = UNSET_FLAG;
    u.request_buffering = UNSET_FLAG;
    u.ignore_client_abort = UNSET_FLAG;
    u.force_ranges = UNSET_FLAG;
    u.local = unset_ptr();
    u.socket_keepalive = UNSET_FLAG;
    u.connect_timeout = UNSET_MSEC;
    u.send_timeout = UNSET_MSEC;
    u.read_timeout = UNSET_MSEC;
    u.next_upstream_timeout = UNSET_MSEC;
    u.send_lowat = UNSET_SIZE;
    u.buffer_size = UNSET_SIZE;
    u.limit_rate = unset_ptr();
    u.busy_buffers_size_conf = UNSET_SIZE;
    u.max_temp_file_size_conf = UNSET_SIZE;
    u.temp_file_write_size_conf = UNSET_SIZE;
    u.pass_request_headers = UNSET_FLAG;
    u.pass_request_body = UNSET_FLAG;
    u.hide_headers = unset_ptr();
    u.pass_headers = unset_ptr();
    u.intercept_errors = UNSET_FLAG;
    // Cyclic temp files are not offered (as in uwsgi).
    u.cyclic_temp_file = 0;
    // X-Accel-Buffering from the app may switch buffering per response.
    u.set_change_buffering(1);
    u.module = ngx_string!("ferrocorn");
    (conf as *mut LocConf).cast()
}

/// `merge_loc_conf`: inherit from `parent`, else the defaults, which are
/// those of the uwsgi_* twins.
///
/// # Safety
/// Called by nginx with a valid `cf` and two [`LocConf`]s from
/// [`create_loc_conf`].
pub unsafe extern "C" fn merge_loc_conf(
    cf: *mut ngx_conf_t,
    parent: *mut c_void,
    child: *mut c_void,
) -> *mut c_char {
    // SAFETY: both pointers come from create_loc_conf and are distinct levels.
    let (prev, conf) = unsafe {
        (
            &mut *parent.cast::<LocConf>(),
            &mut *child.cast::<LocConf>(),
        )
    };
    // SAFETY: nginx passes a live conf for the location being merged.
    let cf_ref = unsafe { &mut *cf };
    match merge(cf_ref, prev, conf) {
        Ok(()) => NGX_CONF_OK,
        Err(()) => NGX_CONF_ERROR,
    }
}

fn merge(cf: &mut ngx_conf_t, prev: &mut LocConf, conf: &mut LocConf) -> Result<(), ()> {
    let cfp: *mut ngx_conf_t = cf;
    let (u, p) = (&mut conf.upstream, &mut prev.upstream);
    // SAFETY: ngx_pagesize is set by nginx before any configuration is read.
    let pagesize = unsafe { ngx::ffi::ngx_pagesize };

    merge_uint(&mut u.next_upstream_tries, p.next_upstream_tries, 0);
    merge_flag(&mut u.buffering, p.buffering, 1);
    merge_flag(&mut u.request_buffering, p.request_buffering, 1);
    merge_flag(&mut u.ignore_client_abort, p.ignore_client_abort, 0);
    merge_flag(&mut u.force_ranges, p.force_ranges, 0);
    merge_ptr(&mut u.local, p.local);
    merge_flag(&mut u.socket_keepalive, p.socket_keepalive, 0);
    merge_msec(&mut u.connect_timeout, p.connect_timeout, 60_000);
    merge_msec(&mut u.send_timeout, p.send_timeout, 60_000);
    merge_msec(&mut u.read_timeout, p.read_timeout, 60_000);
    merge_msec(&mut u.next_upstream_timeout, p.next_upstream_timeout, 0);
    merge_size(&mut u.send_lowat, p.send_lowat, 0);
    merge_size(&mut u.buffer_size, p.buffer_size, pagesize);
    merge_ptr(&mut u.limit_rate, p.limit_rate);
    merge_bufs(&mut u.bufs, p.bufs, 8, pagesize);

    if u.bufs.num < 2 {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cfp,
            "there must be at least 2 \"ferrocorn_buffers\""
        );
        return Err(());
    }

    // The largest single buffer: every derived size must hold at least one.
    let size = u.buffer_size.max(u.bufs.size);

    merge_size(
        &mut u.busy_buffers_size_conf,
        p.busy_buffers_size_conf,
        UNSET_SIZE,
    );
    u.busy_buffers_size = derived(u.busy_buffers_size_conf, 2 * size);
    if u.busy_buffers_size < size {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cfp,
            "\"ferrocorn_busy_buffers_size\" must be equal to or greater than the maximum of \
             the value of \"ferrocorn_buffer_size\" and one of the \"ferrocorn_buffers\""
        );
        return Err(());
    }
    if u.busy_buffers_size > (u.bufs.num as usize - 1) * u.bufs.size {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cfp,
            "\"ferrocorn_busy_buffers_size\" must be less than the size of all \
             \"ferrocorn_buffers\" minus one buffer"
        );
        return Err(());
    }

    merge_size(
        &mut u.temp_file_write_size_conf,
        p.temp_file_write_size_conf,
        UNSET_SIZE,
    );
    u.temp_file_write_size = derived(u.temp_file_write_size_conf, 2 * size);
    if u.temp_file_write_size < size {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cfp,
            "\"ferrocorn_temp_file_write_size\" must be equal to or greater than the maximum \
             of the value of \"ferrocorn_buffer_size\" and one of the \"ferrocorn_buffers\""
        );
        return Err(());
    }

    merge_size(
        &mut u.max_temp_file_size_conf,
        p.max_temp_file_size_conf,
        UNSET_SIZE,
    );
    u.max_temp_file_size = derived(u.max_temp_file_size_conf, 1024 * 1024 * 1024);
    if u.max_temp_file_size != 0 && u.max_temp_file_size < size {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cfp,
            "\"ferrocorn_max_temp_file_size\" must be equal to zero to disable temporary files \
             usage or must be equal to or greater than the maximum of the value of \
             \"ferrocorn_buffer_size\" and one of the \"ferrocorn_buffers\""
        );
        return Err(());
    }

    merge_bitmask(
        &mut u.ignore_headers,
        p.ignore_headers,
        NGX_CONF_BITMASK_SET as ngx_uint_t,
    );
    merge_bitmask(
        &mut u.next_upstream,
        p.next_upstream,
        (NGX_CONF_BITMASK_SET | NGX_HTTP_UPSTREAM_FT_ERROR | NGX_HTTP_UPSTREAM_FT_TIMEOUT)
            as ngx_uint_t,
    );
    if u.next_upstream & NGX_HTTP_UPSTREAM_FT_OFF as ngx_uint_t != 0 {
        u.next_upstream = (NGX_CONF_BITMASK_SET | NGX_HTTP_UPSTREAM_FT_OFF) as ngx_uint_t;
    }

    // Where response bodies too large for the buffers are spooled, relative
    // to the prefix, with uwsgi's 1:2 directory levels.
    let mut temp_path = ngx_path_init_t {
        name: ngx_string!("ferrocorn_temp"),
        level: [1, 2, 0],
    };
    // SAFETY: cf is live; the path fields belong to these confs; nginx only
    // reads `temp_path` (it copies the name before resolving it).
    let rc =
        unsafe { ngx_conf_merge_path_value(cfp, &mut u.temp_path, p.temp_path, &mut temp_path) };
    if rc != NGX_CONF_OK {
        return Err(());
    }

    merge_flag(&mut u.pass_request_headers, p.pass_request_headers, 1);
    merge_flag(&mut u.pass_request_body, p.pass_request_body, 1);
    merge_flag(&mut u.intercept_errors, p.intercept_errors, 0);

    // Headers nginx acts on itself and the client must not see, as uwsgi;
    // plus Status, which a CGI-minded app might send besides its status.
    let mut hide = [
        ngx_string!("Status"),
        ngx_string!("X-Accel-Expires"),
        ngx_string!("X-Accel-Redirect"),
        ngx_string!("X-Accel-Limit-Rate"),
        ngx_string!("X-Accel-Buffering"),
        ngx_string!("X-Accel-Charset"),
        ngx_str_t {
            len: 0,
            data: ptr::null_mut(),
        },
    ];
    let mut hash = ngx_hash_init_t {
        hash: ptr::null_mut(),
        key: None,
        max_size: 512,
        // SAFETY: ngx_cacheline_size is set by nginx at startup.
        bucket_size: align(64, unsafe { ngx::ffi::ngx_cacheline_size }),
        name: c"ferrocorn_hide_headers_hash".as_ptr().cast_mut(),
        pool: ptr::null_mut(),
        temp_pool: ptr::null_mut(),
    };
    // SAFETY: cf is live; `hide` is NULL-terminated and only read; the hash
    // keys point at 'static literals.
    let rc =
        unsafe { ngx_http_upstream_hide_headers_hash(cfp, u, p, hide.as_mut_ptr(), &mut hash) };
    if rc != crate::ffi::OK {
        return Err(());
    }

    // SAFETY: cf is a location-level conf, so the core module's slot exists.
    let clcf: &mut ngx_http_core_loc_conf_t = NgxHttpCoreModule::location_conf_mut(cf).ok_or(())?;
    // `if` blocks and limit_except inherit the enclosing ferrocorn_pass.
    if clcf.noname() != 0 && u.upstream.is_null() {
        u.upstream = p.upstream;
    }
    if clcf.lmt_excpt() != 0 && clcf.handler.is_none() && !u.upstream.is_null() {
        clcf.handler = Some(crate::handler::ferrocorn_handler);
    }

    if conf.params.is_null() {
        conf.params = prev.params;
    }
    Ok(())
}
