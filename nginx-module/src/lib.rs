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

    /// The module context: the main conf (cache zones) and the location conf.
    static MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
        preconfiguration: None,
        postconfiguration: None,
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
