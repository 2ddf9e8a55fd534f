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
//! Every `uwsgi_*` directive that applies has a `ferrocorn_*` twin with the
//! same syntax, contexts and defaults (`ferrocorn_pass`, `_param`, the
//! timeouts, `_bind`, `_socket_keepalive`, the buffer sizes, `_buffering`,
//! `_request_buffering`, `_pass_request_headers/_body`, `_intercept_errors`,
//! `_hide_header`, `_pass_header`, `_ignore_headers`, `_ignore_client_abort`,
//! `_force_ranges`, `_limit_rate`, `_next_upstream*`, `_temp_path`,
//! `_store*`, `_cache*` and `_cache_path`); the table with defaults is in the
//! README. Left out: `uwsgi_modifier1/2` and `uwsgi_string` (uwsgi packet
//! fields) and `uwsgi_ssl_*` (the supervisor speaks no TLS). Added:
//! `ferrocorn_keepalive N | off` and its `_time`, `_timeout`, `_requests`
//! twins of the upstream `keepalive*` directives (http level), which keep
//! connections to an address `ferrocorn_pass` names directly alive.
//!
//! # Layout
//!
//! - `lib.rs`: the module record and its context (this file).
//! - [`commands`]: the directive table, in uwsgi's order, with its bitmasks.
//! - [`config`]: the location conf embedding `ngx_http_upstream_conf_t`
//!   and the main conf holding the cache zones; create (all unset) and merge
//!   (every default, in one place).
//! - [`directives`]: `ferrocorn_pass`, `_param`, `_store`, `_cache` and
//!   `_cache_key`, the only directives with code of their own.
//! - [`handler`]: the content handler that starts the upstream.
//! - [`request`]: `create_request`, the request_head frame plus the client
//!   body framed without copying.
//! - [`body_output`]: the output filter that frames a streamed client body
//!   (`ferrocorn_request_buffering off`).
//! - [`upstream`]: `process_header`, `create_key` and the other upstream
//!   callbacks.
//! - [`keepalive`]: nginx's keepalive module on the implicit upstream of
//!   each address `ferrocorn_pass` names directly (`ferrocorn_keepalive`).
//! - [`peer`]: the guard around the balancer that checks a kept-alive
//!   connection for end of file before a request nginx would not retry.
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
pub mod body_output;
#[cfg(not(test))]
pub mod commands;
#[cfg(not(test))]
pub mod config;
#[cfg(not(test))]
pub mod directives;
#[cfg(not(test))]
pub mod filter;
#[cfg(not(test))]
pub mod handler;
#[cfg(not(test))]
pub mod keepalive;
#[cfg(not(test))]
pub mod peer;
#[cfg(not(test))]
pub mod request;
#[cfg(not(test))]
pub mod upstream;

#[cfg(not(test))]
pub use nginx::{module, ngx_http_ferrocorn_module};

/// The module record and its context.
#[cfg(not(test))]
mod nginx {
    use core::ptr::addr_of;

    use ngx::ffi::{ngx_command_t, ngx_http_module_t, ngx_module_t, ngx_uint_t, NGX_HTTP_MODULE};

    use crate::commands::COMMANDS;
    use crate::config;

    /// The module context: the main conf (cache zones, guarded upstreams,
    /// keepalive), postconfiguration (keepalive on implicit upstreams, then
    /// the guard) and the location conf.
    static MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
        preconfiguration: None,
        postconfiguration: Some(crate::peer::postconfiguration),
        create_main_conf: Some(config::create_main_conf),
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
