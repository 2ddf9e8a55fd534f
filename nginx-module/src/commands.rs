//! The directive table: every `ferrocorn_*` directive, in the order of
//! ngx_http_uwsgi_module's table, with the same contexts, setters and
//! offsets as its `uwsgi_*` twin.
//!
//! Only `ferrocorn_pass`, `_param`, `_store`, `_cache`, `_cache_key` and
//! `_keepalive` have code of their own ([`crate::directives`]); everything
//! else is a stock nginx slot writing into the embedded
//! `ngx_http_upstream_conf_t` (or, for `ferrocorn_cache_path` and the
//! `ferrocorn_keepalive_*` twins of the upstream `keepalive_*`, into the
//! main conf).

use core::ffi::c_void;
use core::mem::offset_of;
use core::ptr::{addr_of, null_mut};

use ngx::ffi::{
    ngx_command_t, ngx_conf_bitmask_t, ngx_conf_set_access_slot, ngx_conf_set_bitmask_slot,
    ngx_conf_set_bufs_slot, ngx_conf_set_flag_slot, ngx_conf_set_msec_slot, ngx_conf_set_num_slot,
    ngx_conf_set_off_slot, ngx_conf_set_path_slot, ngx_conf_set_size_slot,
    ngx_conf_set_str_array_slot, ngx_http_file_cache_set_slot, ngx_http_file_cache_valid_set_slot,
    ngx_http_set_predicate_slot, ngx_http_upstream_bind_set_slot, ngx_http_upstream_conf_t,
    ngx_str_t, ngx_uint_t, NGX_CONF_1MORE, NGX_CONF_2MORE, NGX_CONF_FLAG, NGX_CONF_TAKE1,
    NGX_CONF_TAKE12, NGX_CONF_TAKE123, NGX_CONF_TAKE1234, NGX_CONF_TAKE2, NGX_CONF_TAKE23,
    NGX_HTTP_GET, NGX_HTTP_HEAD, NGX_HTTP_LIF_CONF, NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET,
    NGX_HTTP_MAIN_CONF, NGX_HTTP_MAIN_CONF_OFFSET, NGX_HTTP_POST, NGX_HTTP_SRV_CONF,
    NGX_HTTP_UPSTREAM_FT_ERROR, NGX_HTTP_UPSTREAM_FT_HTTP_403, NGX_HTTP_UPSTREAM_FT_HTTP_404,
    NGX_HTTP_UPSTREAM_FT_HTTP_429, NGX_HTTP_UPSTREAM_FT_HTTP_500, NGX_HTTP_UPSTREAM_FT_HTTP_503,
    NGX_HTTP_UPSTREAM_FT_INVALID_HEADER, NGX_HTTP_UPSTREAM_FT_NON_IDEMPOTENT,
    NGX_HTTP_UPSTREAM_FT_OFF, NGX_HTTP_UPSTREAM_FT_TIMEOUT, NGX_HTTP_UPSTREAM_FT_UPDATING,
    NGX_HTTP_UPSTREAM_IGN_CACHE_CONTROL, NGX_HTTP_UPSTREAM_IGN_EXPIRES,
    NGX_HTTP_UPSTREAM_IGN_SET_COOKIE, NGX_HTTP_UPSTREAM_IGN_VARY,
    NGX_HTTP_UPSTREAM_IGN_XA_BUFFERING, NGX_HTTP_UPSTREAM_IGN_XA_CHARSET,
    NGX_HTTP_UPSTREAM_IGN_XA_EXPIRES, NGX_HTTP_UPSTREAM_IGN_XA_LIMIT_RATE,
    NGX_HTTP_UPSTREAM_IGN_XA_REDIRECT,
};
use ngx::ngx_string;

use crate::config::{KeepaliveConf, LocConf, MainConf};
use crate::directives;

// `ferrocorn_limit_rate` takes variables since nginx 1.27.0 (a complex
// value); before, a plain size.
#[cfg(not(ngx_limit_rate_complex))]
use ngx::ffi::ngx_conf_set_size_slot as LIMIT_RATE_SLOT;
#[cfg(ngx_limit_rate_complex)]
use ngx::ffi::ngx_http_set_complex_value_size_slot as LIMIT_RATE_SLOT;

/// Contexts of directives that may appear at any http level.
const ANY_LEVEL: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;

/// Offset of a field of the embedded upstream conf inside [`LocConf`].
macro_rules! upstream_offset {
    ($field:ident) => {
        offset_of!(LocConf, upstream) + offset_of!(ngx_http_upstream_conf_t, $field)
    };
}

/// Offset of a `ferrocorn_keepalive_*` field inside [`MainConf`].
macro_rules! keepalive_offset {
    ($field:ident) => {
        offset_of!(MainConf, keepalive) + offset_of!(KeepaliveConf, $field)
    };
}

/// One bitmask value.
const fn mask(name: ngx_str_t, mask: u32) -> ngx_conf_bitmask_t {
    ngx_conf_bitmask_t {
        name,
        mask: mask as ngx_uint_t,
    }
}

/// The end of a bitmask list.
const MASK_END: ngx_conf_bitmask_t = ngx_conf_bitmask_t {
    name: ngx_str_t {
        len: 0,
        data: null_mut(),
    },
    mask: 0,
};

/// `ferrocorn_next_upstream` and `ferrocorn_cache_use_stale` values, as
/// `ngx_http_uwsgi_next_upstream_masks`.
static mut NEXT_UPSTREAM_MASKS: [ngx_conf_bitmask_t; 12] = [
    mask(ngx_string!("error"), NGX_HTTP_UPSTREAM_FT_ERROR),
    mask(ngx_string!("timeout"), NGX_HTTP_UPSTREAM_FT_TIMEOUT),
    mask(
        ngx_string!("invalid_header"),
        NGX_HTTP_UPSTREAM_FT_INVALID_HEADER,
    ),
    mask(
        ngx_string!("non_idempotent"),
        NGX_HTTP_UPSTREAM_FT_NON_IDEMPOTENT,
    ),
    mask(ngx_string!("http_500"), NGX_HTTP_UPSTREAM_FT_HTTP_500),
    mask(ngx_string!("http_503"), NGX_HTTP_UPSTREAM_FT_HTTP_503),
    mask(ngx_string!("http_403"), NGX_HTTP_UPSTREAM_FT_HTTP_403),
    mask(ngx_string!("http_404"), NGX_HTTP_UPSTREAM_FT_HTTP_404),
    mask(ngx_string!("http_429"), NGX_HTTP_UPSTREAM_FT_HTTP_429),
    mask(ngx_string!("updating"), NGX_HTTP_UPSTREAM_FT_UPDATING),
    mask(ngx_string!("off"), NGX_HTTP_UPSTREAM_FT_OFF),
    MASK_END,
];

/// `ferrocorn_cache_methods` values (nginx's
/// `ngx_http_upstream_cache_method_mask`; GET and HEAD are always added).
static mut CACHE_METHOD_MASKS: [ngx_conf_bitmask_t; 4] = [
    mask(ngx_string!("GET"), NGX_HTTP_GET),
    mask(ngx_string!("HEAD"), NGX_HTTP_HEAD),
    mask(ngx_string!("POST"), NGX_HTTP_POST),
    MASK_END,
];

/// `ferrocorn_ignore_headers` values (nginx's
/// `ngx_http_upstream_ignore_headers_masks`).
static mut IGNORE_HEADERS_MASKS: [ngx_conf_bitmask_t; 10] = [
    mask(
        ngx_string!("X-Accel-Redirect"),
        NGX_HTTP_UPSTREAM_IGN_XA_REDIRECT,
    ),
    mask(
        ngx_string!("X-Accel-Expires"),
        NGX_HTTP_UPSTREAM_IGN_XA_EXPIRES,
    ),
    mask(
        ngx_string!("X-Accel-Limit-Rate"),
        NGX_HTTP_UPSTREAM_IGN_XA_LIMIT_RATE,
    ),
    mask(
        ngx_string!("X-Accel-Buffering"),
        NGX_HTTP_UPSTREAM_IGN_XA_BUFFERING,
    ),
    mask(
        ngx_string!("X-Accel-Charset"),
        NGX_HTTP_UPSTREAM_IGN_XA_CHARSET,
    ),
    mask(ngx_string!("Expires"), NGX_HTTP_UPSTREAM_IGN_EXPIRES),
    mask(
        ngx_string!("Cache-Control"),
        NGX_HTTP_UPSTREAM_IGN_CACHE_CONTROL,
    ),
    mask(ngx_string!("Set-Cookie"), NGX_HTTP_UPSTREAM_IGN_SET_COOKIE),
    mask(ngx_string!("Vary"), NGX_HTTP_UPSTREAM_IGN_VARY),
    MASK_END,
];

/// Number of directives, for the table's type.
const COMMAND_COUNT: usize = 48;

/// The directive table. `static mut` because nginx takes `ngx_command_t *`;
/// nginx only reads it.
pub static mut COMMANDS: [ngx_command_t; COMMAND_COUNT + 1] = [
    ngx_command_t {
        name: ngx_string!("ferrocorn_pass"),
        type_: (NGX_HTTP_LOC_CONF | NGX_HTTP_LIF_CONF | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(directives::set_pass),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_param"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE23) as ngx_uint_t,
        set: Some(directives::set_param),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_store"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(directives::set_store),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_store_access"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE123) as ngx_uint_t,
        set: Some(ngx_conf_set_access_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(store_access),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_buffering"),
        type_: (ANY_LEVEL | NGX_CONF_FLAG) as ngx_uint_t,
        set: Some(ngx_conf_set_flag_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(buffering),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_request_buffering"),
        type_: (ANY_LEVEL | NGX_CONF_FLAG) as ngx_uint_t,
        set: Some(ngx_conf_set_flag_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(request_buffering),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_ignore_client_abort"),
        type_: (ANY_LEVEL | NGX_CONF_FLAG) as ngx_uint_t,
        set: Some(ngx_conf_set_flag_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(ignore_client_abort),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_bind"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE12) as ngx_uint_t,
        set: Some(ngx_http_upstream_bind_set_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(local),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_socket_keepalive"),
        type_: (ANY_LEVEL | NGX_CONF_FLAG) as ngx_uint_t,
        set: Some(ngx_conf_set_flag_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(socket_keepalive),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_connect_timeout"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(ngx_conf_set_msec_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(connect_timeout),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_send_timeout"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(ngx_conf_set_msec_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(send_timeout),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_buffer_size"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(ngx_conf_set_size_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(buffer_size),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_pass_request_headers"),
        type_: (ANY_LEVEL | NGX_CONF_FLAG) as ngx_uint_t,
        set: Some(ngx_conf_set_flag_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(pass_request_headers),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_pass_request_body"),
        type_: (ANY_LEVEL | NGX_CONF_FLAG) as ngx_uint_t,
        set: Some(ngx_conf_set_flag_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(pass_request_body),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_intercept_errors"),
        type_: (ANY_LEVEL | NGX_CONF_FLAG) as ngx_uint_t,
        set: Some(ngx_conf_set_flag_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(intercept_errors),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_read_timeout"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(ngx_conf_set_msec_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(read_timeout),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_buffers"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE2) as ngx_uint_t,
        set: Some(ngx_conf_set_bufs_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(bufs),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_busy_buffers_size"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(ngx_conf_set_size_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(busy_buffers_size_conf),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_force_ranges"),
        type_: (ANY_LEVEL | NGX_CONF_FLAG) as ngx_uint_t,
        set: Some(ngx_conf_set_flag_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(force_ranges),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_limit_rate"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(LIMIT_RATE_SLOT),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(limit_rate),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_cache"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(directives::set_cache),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_cache_key"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(directives::set_cache_key),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_keepalive"),
        type_: (NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(directives::set_keepalive),
        conf: NGX_HTTP_MAIN_CONF_OFFSET,
        offset: 0,
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_keepalive_time"),
        type_: (NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(ngx_conf_set_msec_slot),
        conf: NGX_HTTP_MAIN_CONF_OFFSET,
        offset: keepalive_offset!(time),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_keepalive_timeout"),
        type_: (NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(ngx_conf_set_msec_slot),
        conf: NGX_HTTP_MAIN_CONF_OFFSET,
        offset: keepalive_offset!(timeout),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_keepalive_requests"),
        type_: (NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(ngx_conf_set_num_slot),
        conf: NGX_HTTP_MAIN_CONF_OFFSET,
        offset: keepalive_offset!(requests),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_cache_path"),
        type_: (NGX_HTTP_MAIN_CONF | NGX_CONF_2MORE) as ngx_uint_t,
        set: Some(ngx_http_file_cache_set_slot),
        conf: NGX_HTTP_MAIN_CONF_OFFSET,
        offset: offset_of!(MainConf, caches),
        post: addr_of!(crate::ngx_http_ferrocorn_module) as *mut c_void,
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_cache_bypass"),
        type_: (ANY_LEVEL | NGX_CONF_1MORE) as ngx_uint_t,
        set: Some(ngx_http_set_predicate_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(cache_bypass),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_no_cache"),
        type_: (ANY_LEVEL | NGX_CONF_1MORE) as ngx_uint_t,
        set: Some(ngx_http_set_predicate_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(no_cache),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_cache_valid"),
        type_: (ANY_LEVEL | NGX_CONF_1MORE) as ngx_uint_t,
        set: Some(ngx_http_file_cache_valid_set_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(cache_valid),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_cache_min_uses"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(ngx_conf_set_num_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(cache_min_uses),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_cache_max_range_offset"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(ngx_conf_set_off_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(cache_max_range_offset),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_cache_use_stale"),
        type_: (ANY_LEVEL | NGX_CONF_1MORE) as ngx_uint_t,
        set: Some(ngx_conf_set_bitmask_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(cache_use_stale),
        post: addr_of!(NEXT_UPSTREAM_MASKS) as *mut c_void,
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_cache_methods"),
        type_: (ANY_LEVEL | NGX_CONF_1MORE) as ngx_uint_t,
        set: Some(ngx_conf_set_bitmask_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(cache_methods),
        post: addr_of!(CACHE_METHOD_MASKS) as *mut c_void,
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_cache_lock"),
        type_: (ANY_LEVEL | NGX_CONF_FLAG) as ngx_uint_t,
        set: Some(ngx_conf_set_flag_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(cache_lock),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_cache_lock_timeout"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(ngx_conf_set_msec_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(cache_lock_timeout),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_cache_lock_age"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(ngx_conf_set_msec_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(cache_lock_age),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_cache_revalidate"),
        type_: (ANY_LEVEL | NGX_CONF_FLAG) as ngx_uint_t,
        set: Some(ngx_conf_set_flag_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(cache_revalidate),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_cache_background_update"),
        type_: (ANY_LEVEL | NGX_CONF_FLAG) as ngx_uint_t,
        set: Some(ngx_conf_set_flag_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(cache_background_update),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_temp_path"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1234) as ngx_uint_t,
        set: Some(ngx_conf_set_path_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(temp_path),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_max_temp_file_size"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(ngx_conf_set_size_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(max_temp_file_size_conf),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_temp_file_write_size"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(ngx_conf_set_size_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(temp_file_write_size_conf),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_next_upstream"),
        type_: (ANY_LEVEL | NGX_CONF_1MORE) as ngx_uint_t,
        set: Some(ngx_conf_set_bitmask_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(next_upstream),
        post: addr_of!(NEXT_UPSTREAM_MASKS) as *mut c_void,
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_next_upstream_tries"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(ngx_conf_set_num_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(next_upstream_tries),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_next_upstream_timeout"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(ngx_conf_set_msec_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(next_upstream_timeout),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_pass_header"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(ngx_conf_set_str_array_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(pass_headers),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_hide_header"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(ngx_conf_set_str_array_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(hide_headers),
        post: null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ferrocorn_ignore_headers"),
        type_: (ANY_LEVEL | NGX_CONF_1MORE) as ngx_uint_t,
        set: Some(ngx_conf_set_bitmask_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: upstream_offset!(ignore_headers),
        post: addr_of!(IGNORE_HEADERS_MASKS) as *mut c_void,
    },
    ngx_command_t::empty(),
];
