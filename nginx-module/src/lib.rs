//! `ngx_http_ferrocorn_module`: nginx passes HTTP requests to ferrocorn
//! workers over the ferrocorn protocol (length-prefixed protobuf frames,
//! see `protocol/proto/ferrocorn.proto`), through nginx's own upstream
//! machinery, in the shape of ngx_http_uwsgi_module.
//!
//! ```nginx
//! load_module /path/to/ngx_http_ferrocorn_module.so;
//! location / {
//!     ferrocorn_pass unix:/run/ferrocorn.sock;   # or 127.0.0.1:8000, or an upstream name
//!     ferrocorn_param SCRIPT_NAME /app;          # environ[NAME] = VALUE; variables allowed
//! }
//! ```
//!
//! # Directives
//!
//! | directive | contexts | default |
//! |---|---|---|
//! | `ferrocorn_pass unix:/path \| host:port \| upstream;` | location, if in location | — |
//! | `ferrocorn_param NAME VALUE [if_not_empty];` | http, server, location | none; a level without any inherits its parent's |
//! | `ferrocorn_connect_timeout`, `_send_timeout`, `_read_timeout` | http, server, location | 60s |
//! | `ferrocorn_buffering on\|off;` | http, server, location | on |
//! | `ferrocorn_buffer_size SIZE;` | http, server, location | one page (4k) |
//! | `ferrocorn_buffers N SIZE;` | http, server, location | 8 × one page |
//! | `ferrocorn_busy_buffers_size`, `_temp_file_write_size` | http, server, location | 2 × the larger buffer |
//! | `ferrocorn_max_temp_file_size SIZE;` | http, server, location | 1024m |
//! | `ferrocorn_next_upstream ...;` | http, server, location | error timeout |
//!
//! Defaults and semantics are those of the `uwsgi_*` twins. Responses are
//! spooled to `<prefix>/ferrocorn_temp` when the buffers are full.
//!
//! # Layout
//!
//! - `lib.rs`: the module, its directive table and context (this file).
//! - [`config`]: the location conf embedding `ngx_http_upstream_conf_t`;
//!   create (all unset) and merge (every default, in one place).
//! - [`directives`]: `ferrocorn_pass` and `ferrocorn_param`, the only
//!   directives with code of their own.
//! - [`handler`]: the content handler that starts the upstream.
//! - [`request`]: `create_request`, the request_head frame plus the client
//!   body framed without copying.
//! - [`upstream`]: `process_header` and the other upstream callbacks.
//! - [`filter`]: the buffered (event pipe) and non-buffered body filters.
//! - Pure Rust, unit-tested without nginx: [`head`] (judging the response
//!   head), [`stream`] (walking the response body stream), [`body_frames`]
//!   (cutting the client body into frames), [`pass_target`] (what
//!   `ferrocorn_pass` accepts), [`merge`] (nginx's conf-merge macros).
//! - [`ffi`]: the constants bindgen lacks and the raw-pointer helpers.

// Pure Rust: unit-tested without nginx.
pub mod body_frames;
pub mod ffi;
pub mod head;
pub mod merge;
pub mod pass_target;
pub mod stream;

// Callbacks nginx calls. They reference nginx's own symbols, which exist
// only inside the nginx process that loads the module, so the unit-test
// executable is built without them.
#[cfg(not(test))]
pub mod config;
#[cfg(not(test))]
pub mod directives;
#[cfg(not(test))]
pub mod filter;
#[cfg(not(test))]
pub mod handler;
#[cfg(not(test))]
pub mod request;
#[cfg(not(test))]
pub mod upstream;

#[cfg(not(test))]
pub use nginx::{module, ngx_http_ferrocorn_module};

/// The module record, its context and directive table.
#[cfg(not(test))]
mod nginx {
    use core::mem::offset_of;
    use core::ptr::{addr_of, null_mut};

    use ngx::ffi::{
        ngx_command_t, ngx_conf_bitmask_t, ngx_conf_set_bitmask_slot, ngx_conf_set_bufs_slot,
        ngx_conf_set_flag_slot, ngx_conf_set_msec_slot, ngx_conf_set_size_slot, ngx_http_module_t,
        ngx_http_upstream_conf_t, ngx_module_t, ngx_str_t, ngx_uint_t, NGX_CONF_1MORE,
        NGX_CONF_FLAG, NGX_CONF_TAKE1, NGX_CONF_TAKE2, NGX_CONF_TAKE23, NGX_HTTP_LIF_CONF,
        NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MAIN_CONF, NGX_HTTP_MODULE,
        NGX_HTTP_SRV_CONF, NGX_HTTP_UPSTREAM_FT_ERROR, NGX_HTTP_UPSTREAM_FT_HTTP_403,
        NGX_HTTP_UPSTREAM_FT_HTTP_404, NGX_HTTP_UPSTREAM_FT_HTTP_429,
        NGX_HTTP_UPSTREAM_FT_HTTP_500, NGX_HTTP_UPSTREAM_FT_HTTP_503,
        NGX_HTTP_UPSTREAM_FT_INVALID_HEADER, NGX_HTTP_UPSTREAM_FT_NON_IDEMPOTENT,
        NGX_HTTP_UPSTREAM_FT_OFF, NGX_HTTP_UPSTREAM_FT_TIMEOUT,
    };
    use ngx::ngx_string;

    use crate::config::{self, LocConf};
    use crate::directives;

    /// Contexts of directives that may appear at any http level.
    const ANY_LEVEL: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;

    /// Offset of a field of the embedded upstream conf inside [`LocConf`].
    macro_rules! upstream_offset {
        ($field:ident) => {
            offset_of!(LocConf, upstream) + offset_of!(ngx_http_upstream_conf_t, $field)
        };
    }

    /// A directive handled by a stock nginx slot at `offset` in [`LocConf`].
    const fn slot(
        name: ngx_str_t,
        type_: u32,
        set: unsafe extern "C" fn(
            *mut ngx::ffi::ngx_conf_t,
            *mut ngx_command_t,
            *mut core::ffi::c_void,
        ) -> *mut core::ffi::c_char,
        offset: usize,
    ) -> ngx_command_t {
        ngx_command_t {
            name,
            type_: type_ as ngx_uint_t,
            set: Some(set),
            conf: NGX_HTTP_LOC_CONF_OFFSET,
            offset,
            post: null_mut(),
        }
    }

    /// `ferrocorn_next_upstream` values, as `uwsgi_next_upstream` (no cache:
    /// no `updating`).
    static mut NEXT_UPSTREAM_MASKS: [ngx_conf_bitmask_t; 11] = [
        ngx_conf_bitmask_t {
            name: ngx_string!("error"),
            mask: NGX_HTTP_UPSTREAM_FT_ERROR as ngx_uint_t,
        },
        ngx_conf_bitmask_t {
            name: ngx_string!("timeout"),
            mask: NGX_HTTP_UPSTREAM_FT_TIMEOUT as ngx_uint_t,
        },
        ngx_conf_bitmask_t {
            name: ngx_string!("invalid_header"),
            mask: NGX_HTTP_UPSTREAM_FT_INVALID_HEADER as ngx_uint_t,
        },
        ngx_conf_bitmask_t {
            name: ngx_string!("non_idempotent"),
            mask: NGX_HTTP_UPSTREAM_FT_NON_IDEMPOTENT as ngx_uint_t,
        },
        ngx_conf_bitmask_t {
            name: ngx_string!("http_500"),
            mask: NGX_HTTP_UPSTREAM_FT_HTTP_500 as ngx_uint_t,
        },
        ngx_conf_bitmask_t {
            name: ngx_string!("http_503"),
            mask: NGX_HTTP_UPSTREAM_FT_HTTP_503 as ngx_uint_t,
        },
        ngx_conf_bitmask_t {
            name: ngx_string!("http_403"),
            mask: NGX_HTTP_UPSTREAM_FT_HTTP_403 as ngx_uint_t,
        },
        ngx_conf_bitmask_t {
            name: ngx_string!("http_404"),
            mask: NGX_HTTP_UPSTREAM_FT_HTTP_404 as ngx_uint_t,
        },
        ngx_conf_bitmask_t {
            name: ngx_string!("http_429"),
            mask: NGX_HTTP_UPSTREAM_FT_HTTP_429 as ngx_uint_t,
        },
        ngx_conf_bitmask_t {
            name: ngx_string!("off"),
            mask: NGX_HTTP_UPSTREAM_FT_OFF as ngx_uint_t,
        },
        ngx_conf_bitmask_t {
            name: ngx_str_t {
                len: 0,
                data: null_mut(),
            },
            mask: 0,
        },
    ];

    /// The directive table. `static mut` because nginx takes `ngx_command_t *`;
    /// nginx only reads it.
    static mut COMMANDS: [ngx_command_t; 13] = [
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
        slot(
            ngx_string!("ferrocorn_connect_timeout"),
            ANY_LEVEL | NGX_CONF_TAKE1,
            ngx_conf_set_msec_slot,
            upstream_offset!(connect_timeout),
        ),
        slot(
            ngx_string!("ferrocorn_send_timeout"),
            ANY_LEVEL | NGX_CONF_TAKE1,
            ngx_conf_set_msec_slot,
            upstream_offset!(send_timeout),
        ),
        slot(
            ngx_string!("ferrocorn_read_timeout"),
            ANY_LEVEL | NGX_CONF_TAKE1,
            ngx_conf_set_msec_slot,
            upstream_offset!(read_timeout),
        ),
        slot(
            ngx_string!("ferrocorn_buffering"),
            ANY_LEVEL | NGX_CONF_FLAG,
            ngx_conf_set_flag_slot,
            upstream_offset!(buffering),
        ),
        slot(
            ngx_string!("ferrocorn_buffer_size"),
            ANY_LEVEL | NGX_CONF_TAKE1,
            ngx_conf_set_size_slot,
            upstream_offset!(buffer_size),
        ),
        slot(
            ngx_string!("ferrocorn_buffers"),
            ANY_LEVEL | NGX_CONF_TAKE2,
            ngx_conf_set_bufs_slot,
            upstream_offset!(bufs),
        ),
        // The three sizes merge_loc_conf derives from the buffers, settable so
        // that every buffer combination can be made consistent.
        slot(
            ngx_string!("ferrocorn_busy_buffers_size"),
            ANY_LEVEL | NGX_CONF_TAKE1,
            ngx_conf_set_size_slot,
            upstream_offset!(busy_buffers_size_conf),
        ),
        slot(
            ngx_string!("ferrocorn_max_temp_file_size"),
            ANY_LEVEL | NGX_CONF_TAKE1,
            ngx_conf_set_size_slot,
            upstream_offset!(max_temp_file_size_conf),
        ),
        slot(
            ngx_string!("ferrocorn_temp_file_write_size"),
            ANY_LEVEL | NGX_CONF_TAKE1,
            ngx_conf_set_size_slot,
            upstream_offset!(temp_file_write_size_conf),
        ),
        ngx_command_t {
            name: ngx_string!("ferrocorn_next_upstream"),
            type_: (ANY_LEVEL | NGX_CONF_1MORE) as ngx_uint_t,
            set: Some(ngx_conf_set_bitmask_slot),
            conf: NGX_HTTP_LOC_CONF_OFFSET,
            offset: upstream_offset!(next_upstream),
            post: addr_of!(NEXT_UPSTREAM_MASKS) as *mut core::ffi::c_void,
        },
        ngx_command_t::empty(),
    ];

    /// The module context: only location configuration.
    static MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
        preconfiguration: None,
        postconfiguration: None,
        create_main_conf: None,
        init_main_conf: None,
        create_srv_conf: None,
        merge_srv_conf: None,
        create_loc_conf: Some(config::create_loc_conf),
        merge_loc_conf: Some(config::merge_loc_conf),
    };

    /// The module nginx loads. nginx writes `index` and `ctx_index` into it
    /// while loading, hence `static mut`.
    #[used]
    #[no_mangle]
    #[allow(non_upper_case_globals)]
    pub static mut ngx_http_ferrocorn_module: ngx_module_t = ngx_module_t {
        ctx: addr_of!(MODULE_CTX) as *mut core::ffi::c_void,
        commands: addr_of!(COMMANDS) as *mut ngx_command_t,
        type_: NGX_HTTP_MODULE as ngx_uint_t,
        ..ngx_module_t::default()
    };

    // `load_module` looks for these symbols in the shared object.
    ngx::ngx_modules!(ngx_http_ferrocorn_module);

    /// Our module record, for ctx and conf lookups at request time.
    pub fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes the record only while loading the configuration,
        // before any request callback can run; afterwards it is read-only.
        unsafe { &*addr_of!(ngx_http_ferrocorn_module) }
    }
}
