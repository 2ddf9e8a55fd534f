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

use ferrocorn_protocol::body::MAX_BODY_CHUNK;
use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_array_t, ngx_conf_merge_path_value, ngx_conf_t, ngx_hash_init_t, ngx_http_complex_value_t,
    ngx_http_core_loc_conf_t, ngx_http_upstream_conf_t, ngx_http_upstream_hide_headers_hash,
    ngx_msec_t, ngx_path_init_t, ngx_pcalloc, ngx_str_t, ngx_uint_t, NGX_CONF_BITMASK_SET,
    NGX_HTTP_GET, NGX_HTTP_HEAD, NGX_HTTP_UPSTREAM_FT_ERROR, NGX_HTTP_UPSTREAM_FT_NOLIVE,
    NGX_HTTP_UPSTREAM_FT_OFF, NGX_HTTP_UPSTREAM_FT_TIMEOUT, NGX_LOG_EMERG, NGX_LOG_WARN,
    NGX_MAX_OFF_T_VALUE,
};
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};
use ngx::{ngx_conf_log_error, ngx_string};

use crate::ffi::{
    signed_2bit, str_bytes, unset_ptr, UNSET_FLAG, UNSET_MSEC, UNSET_SIZE, UNSET_UINT,
};
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
    /// `ferrocorn_cache_key`, compiled once; `value.data` NULL when unset.
    pub cache_key: ngx_http_complex_value_t,
}

/// The http-level settings: the cache zones `ferrocorn_cache_path`
/// declares, the upstreams `ferrocorn_pass` uses, and the keepalive of
/// the addresses it names directly.
#[repr(C)]
pub struct MainConf {
    /// `ngx_http_file_cache_t *` items, filled by nginx's
    /// `ngx_http_file_cache_set_slot`; the upstream looks zones up here
    /// when `ferrocorn_cache` names one through variables.
    pub caches: ngx_array_t,
    /// [`crate::peer::Guarded`] items: each upstream `ferrocorn_pass` uses,
    /// with its balancer's `peer.init`, wrapped at postconfiguration.
    pub guarded: ngx_array_t,
    /// `ferrocorn_keepalive*`, for the implicit upstreams (see
    /// [`crate::keepalive`]).
    pub keepalive: KeepaliveConf,
}

/// `ferrocorn_keepalive N | off` and its `_time`, `_timeout`, `_requests`
/// twins of the upstream `keepalive*` directives; unset until configured.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct KeepaliveConf {
    /// Idle connections cached per nginx worker process; 0 is `off`.
    pub max_cached: ngx_uint_t,
    /// `ferrocorn_keepalive_time`: the longest life of one connection.
    pub time: ngx_msec_t,
    /// `ferrocorn_keepalive_timeout`: how long an idle connection is kept.
    pub timeout: ngx_msec_t,
    /// `ferrocorn_keepalive_requests`: requests per connection.
    pub requests: ngx_uint_t,
}

/// `ngx_array_init` (a C inline function bindgen does not see): room for
/// four `item`-byte elements from the conf pool.
///
/// # Safety
/// `cf` is a live conf.
unsafe fn empty_array(cf: *mut ngx_conf_t, item: usize) -> Option<ngx_array_t> {
    // SAFETY: nginx passes a live conf; pool allocation for 4 items.
    let elts = unsafe { ngx::ffi::ngx_palloc((*cf).pool, 4 * item) };
    (!elts.is_null()).then(|| ngx_array_t {
        elts,
        nelts: 0,
        size: item,
        nalloc: 4,
        // SAFETY: as above.
        pool: unsafe { (*cf).pool },
    })
}

/// `create_main_conf`: empty cache and upstream lists, keepalive unset.
///
/// # Safety
/// Called by nginx with a valid `cf`.
pub unsafe extern "C" fn create_main_conf(cf: *mut ngx_conf_t) -> *mut c_void {
    // SAFETY: nginx passes a live conf whose pool outlives the configuration.
    let conf = unsafe { ngx_pcalloc((*cf).pool, mem::size_of::<MainConf>()) }.cast::<MainConf>();
    // SAFETY: freshly allocated and zeroed; an all-zero array is valid to init.
    let Some(conf) = (unsafe { conf.as_mut() }) else {
        return ptr::null_mut();
    };
    // In place: the stock cache_path slot pushes into this very array.
    let cache = mem::size_of::<*mut ngx::ffi::ngx_http_file_cache_t>();
    // SAFETY: nginx passes a live conf.
    let (Some(caches), Some(guarded)) = (unsafe { empty_array(cf, cache) }, unsafe {
        empty_array(cf, mem::size_of::<crate::peer::Guarded>())
    }) else {
        return ptr::null_mut();
    };
    conf.caches = caches;
    conf.guarded = guarded;
    conf.keepalive = KeepaliveConf {
        max_cached: UNSET_UINT,
        time: UNSET_MSEC,
        timeout: UNSET_MSEC,
        requests: UNSET_UINT,
    };
    (conf as *mut MainConf).cast()
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
    // temp_path, hide_headers_hash, cache_zone, cache_use_stale,
    // cache_methods, store_lengths/values, params, cache_key.
    let u = &mut conf.upstream;
    u.set_store(UNSET_FLAG as i32);
    u.store_access = UNSET_UINT;
    u.set_cache(UNSET_FLAG as i32);
    u.cache_min_uses = UNSET_UINT;
    u.cache_max_range_offset = UNSET_FLAG as _;
    u.cache_bypass = unset_ptr();
    u.no_cache = unset_ptr();
    u.cache_valid = unset_ptr();
    u.cache_lock = UNSET_FLAG;
    u.cache_lock_timeout = UNSET_MSEC;
    u.cache_lock_age = UNSET_MSEC;
    u.cache_revalidate = UNSET_FLAG;
    u.cache_background_update = UNSET_FLAG;
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
    u.limit_rate = unset_limit_rate();
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

    // `ferrocorn_store` and `ferrocorn_cache` exclude each other.
    if signed_2bit(u.store()) > 0 {
        u.set_cache(0);
    }
    if signed_2bit(u.cache()) > 0 {
        u.set_store(0);
    }
    if signed_2bit(u.store()) == UNSET_FLAG as i32 {
        u.set_store(if signed_2bit(p.store()) == UNSET_FLAG as i32 {
            0
        } else {
            signed_2bit(p.store())
        });
        u.store_lengths = p.store_lengths;
        u.store_values = p.store_values;
    }
    merge_uint(&mut u.store_access, p.store_access, 0o600);

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
    merge_limit_rate(&mut u.limit_rate, p.limit_rate);
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

    // Where response bodies too large for the buffers are spooled: beside
    // the uwsgi temp path this nginx was configured with, with uwsgi's 1:2
    // directory levels.
    let default_temp = crate::merge::DEFAULT_TEMP_PATH.get_or_init(|| {
        // NUL-terminated: nginx passes an absolute name to mkdir() as is.
        let mut path =
            crate::merge::default_temp_path(ngx::ffi::NGX_HTTP_UWSGI_TEMP_PATH.to_bytes());
        path.push(0);
        path
    });
    let mut temp_path = ngx_path_init_t {
        name: ngx_str_t {
            len: default_temp.len() - 1,
            // nginx only reads the name; the static outlives every cycle.
            data: default_temp.as_ptr().cast_mut(),
        },
        level: [1, 2, 0],
    };
    // SAFETY: cf is live; the path fields belong to these confs; nginx only
    // reads `temp_path` (it copies the name before resolving it).
    let rc =
        unsafe { ngx_conf_merge_path_value(cfp, &mut u.temp_path, p.temp_path, &mut temp_path) };
    if rc != NGX_CONF_OK {
        return Err(());
    }

    merge_cache(cfp, u, p, &mut conf.cache_key, &prev.cache_key)?;

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
    // A streamed body goes out one client_body_buffer_size piece per frame.
    if u.request_buffering == 0 && clcf.client_body_buffer_size > MAX_BODY_CHUNK {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cfp,
            "\"ferrocorn_request_buffering off\" needs \"client_body_buffer_size\" of at most {} bytes",
            MAX_BODY_CHUNK
        );
        return Err(());
    }
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

/// The cache settings, as ngx_http_uwsgi_merge_loc_conf: a level without
/// `ferrocorn_cache` inherits its parent's zone; a zone must have been
/// declared by `ferrocorn_cache_path`.
fn merge_cache(
    cfp: *mut ngx_conf_t,
    u: &mut ngx_http_upstream_conf_t,
    p: &ngx_http_upstream_conf_t,
    key: &mut ngx_http_complex_value_t,
    prev_key: &ngx_http_complex_value_t,
) -> Result<(), ()> {
    if signed_2bit(u.cache()) == UNSET_FLAG as i32 {
        u.set_cache(if signed_2bit(p.cache()) == UNSET_FLAG as i32 {
            0
        } else {
            signed_2bit(p.cache())
        });
        u.cache_zone = p.cache_zone;
        u.cache_value = p.cache_value;
    }
    // SAFETY: cache_zone is NULL or a zone nginx added for this configuration.
    if let Some(zone) = unsafe { u.cache_zone.as_ref() } {
        if zone.data.is_null() {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cfp,
                "\"ferrocorn_cache\" zone \"{}\" is unknown",
                // SAFETY: the zone name lives in the conf pool.
                String::from_utf8_lossy(unsafe { str_bytes(&zone.shm.name) })
            );
            return Err(());
        }
    }

    merge_uint(&mut u.cache_min_uses, p.cache_min_uses, 1);
    if u.cache_max_range_offset == UNSET_FLAG as _ {
        u.cache_max_range_offset = if p.cache_max_range_offset == UNSET_FLAG as _ {
            NGX_MAX_OFF_T_VALUE as _
        } else {
            p.cache_max_range_offset
        };
    }
    merge_bitmask(
        &mut u.cache_use_stale,
        p.cache_use_stale,
        (NGX_CONF_BITMASK_SET | NGX_HTTP_UPSTREAM_FT_OFF) as ngx_uint_t,
    );
    if u.cache_use_stale & NGX_HTTP_UPSTREAM_FT_OFF as ngx_uint_t != 0 {
        u.cache_use_stale = (NGX_CONF_BITMASK_SET | NGX_HTTP_UPSTREAM_FT_OFF) as ngx_uint_t;
    }
    if u.cache_use_stale & NGX_HTTP_UPSTREAM_FT_ERROR as ngx_uint_t != 0 {
        u.cache_use_stale |= NGX_HTTP_UPSTREAM_FT_NOLIVE as ngx_uint_t;
    }
    if u.cache_methods == 0 {
        u.cache_methods = p.cache_methods;
    }
    u.cache_methods |= (NGX_HTTP_GET | NGX_HTTP_HEAD) as ngx_uint_t;

    merge_ptr(&mut u.cache_bypass, p.cache_bypass);
    merge_ptr(&mut u.no_cache, p.no_cache);
    merge_ptr(&mut u.cache_valid, p.cache_valid);

    if key.value.data.is_null() {
        *key = *prev_key;
    }
    if signed_2bit(u.cache()) != 0 && key.value.data.is_null() {
        ngx_conf_log_error!(
            NGX_LOG_WARN,
            cfp,
            "no \"ferrocorn_cache_key\" for \"ferrocorn_cache\""
        );
    }

    merge_flag(&mut u.cache_lock, p.cache_lock, 0);
    merge_msec(&mut u.cache_lock_timeout, p.cache_lock_timeout, 5000);
    merge_msec(&mut u.cache_lock_age, p.cache_lock_age, 5000);
    merge_flag(&mut u.cache_revalidate, p.cache_revalidate, 0);
    merge_flag(&mut u.cache_background_update, p.cache_background_update, 0);
    Ok(())
}

/// The unset `limit_rate`: a complex value pointer since nginx 1.27.0, a
/// size before.
#[cfg(ngx_limit_rate_complex)]
fn unset_limit_rate() -> *mut ngx_http_complex_value_t {
    unset_ptr()
}

#[cfg(not(ngx_limit_rate_complex))]
fn unset_limit_rate() -> usize {
    UNSET_SIZE
}

#[cfg(ngx_limit_rate_complex)]
fn merge_limit_rate(conf: &mut *mut ngx_http_complex_value_t, prev: *mut ngx_http_complex_value_t) {
    merge_ptr(conf, prev);
}

#[cfg(not(ngx_limit_rate_complex))]
fn merge_limit_rate(conf: &mut usize, prev: usize) {
    merge_size(conf, prev, 0);
}
