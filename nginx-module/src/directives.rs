//! The directives with code of their own: `ferrocorn_pass`,
//! `ferrocorn_param`, `ferrocorn_store`, `ferrocorn_cache`,
//! `ferrocorn_cache_key` and `ferrocorn_keepalive`. Every other directive is a stock nginx slot
//! (see `commands.rs`).
//!
//! A bad argument fails `nginx -t` with a line naming the directive and the
//! value, e.g. `invalid value "unix:" in "ferrocorn_pass": ...`.

use core::ffi::{c_char, c_void};
use core::mem;

use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_array_create, ngx_array_push, ngx_command_t, ngx_conf_t, ngx_http_compile_complex_value,
    ngx_http_compile_complex_value_t, ngx_http_complex_value_t, ngx_http_core_loc_conf_t,
    ngx_http_script_compile, ngx_http_script_compile_t, ngx_http_script_variables_count,
    ngx_http_upstream_add, ngx_palloc, ngx_shared_memory_add, ngx_str_t, ngx_uint_t, ngx_url_t,
    NGX_LOG_EMERG,
};
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};
use ngx::ngx_conf_log_error;

use crate::config::{LocConf, MainConf, ParamConf};
use crate::ffi::{signed_2bit, str_bytes, OK, UNSET_FLAG, UNSET_UINT};
use crate::pass_target::check_pass_target;

/// The directive's arguments (`cf->args`), name first.
///
/// # Safety
/// `cf` must be the conf nginx passed to a directive setter.
unsafe fn args<'a>(cf: &ngx_conf_t) -> &'a [ngx_str_t] {
    // SAFETY: while a setter runs, cf->args is an array of ngx_str_t with at
    // least the directive name, living in the conf pool.
    unsafe { (*cf.args).as_slice() }
}

/// `ferrocorn_pass unix:/path | host:port | upstream_name;`
///
/// # Safety
/// Called by nginx for the directive, with `conf` our [`LocConf`].
pub unsafe extern "C" fn set_pass(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes the directive's conf and our loc conf for this level.
    let (cf_ref, lcf) = unsafe { (&*cf, &mut *conf.cast::<LocConf>()) };
    if !lcf.upstream.upstream.is_null() {
        return c"is duplicate".as_ptr().cast_mut();
    }
    // SAFETY: cf is inside a directive setter.
    let value = unsafe { args(cf_ref) }[1];
    // SAFETY: the argument lives in the conf pool for the whole configuration.
    let target = unsafe { str_bytes(&value) };
    if let Err(e) = check_pass_target(target) {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "invalid value \"{}\" in \"ferrocorn_pass\": {}",
            String::from_utf8_lossy(target),
            e.reason()
        );
        return NGX_CONF_ERROR;
    }

    // SAFETY: ngx_url_t is plain data; all-zero is its documented initial state.
    let mut url: ngx_url_t = unsafe { mem::zeroed() };
    url.url = value;
    url.set_no_resolve(1);
    // SAFETY: cf is live; nginx copies what it keeps from `url`.
    lcf.upstream.upstream = unsafe { ngx_http_upstream_add(cf, &mut url, 0) };
    if lcf.upstream.upstream.is_null() {
        return NGX_CONF_ERROR;
    }
    // SAFETY: inside a directive of the http block; the upstream lives
    // with the configuration.
    if !unsafe { crate::peer::register(cf, lcf.upstream.upstream) } {
        return NGX_CONF_ERROR;
    }

    let Some(clcf) = NgxHttpCoreModule::location_conf_mut(cf_ref) else {
        return NGX_CONF_ERROR;
    };
    let clcf: &mut ngx_http_core_loc_conf_t = clcf;
    clcf.handler = Some(crate::handler::ferrocorn_handler);
    // SAFETY: the location name lives in the conf pool.
    if unsafe { str_bytes(&clcf.name) }.last() == Some(&b'/') {
        clcf.set_auto_redirect(1);
    }
    NGX_CONF_OK
}

/// `ferrocorn_param NAME VALUE [if_not_empty];` — VALUE may hold variables;
/// it is compiled here, once, as a complex value.
///
/// # Safety
/// Called by nginx for the directive, with `conf` our [`LocConf`].
pub unsafe extern "C" fn set_param(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes the directive's conf and our loc conf for this level.
    let (cf_ref, lcf) = unsafe { (&*cf, &mut *conf.cast::<LocConf>()) };
    // SAFETY: cf is inside a directive setter.
    let argv = unsafe { args(cf_ref) };
    let (name, mut value) = (argv[1], argv[2]);

    let skip_empty = match argv.get(3) {
        None => false,
        // SAFETY: arguments live in the conf pool.
        Some(flag) if unsafe { str_bytes(flag) } == b"if_not_empty" => true,
        Some(flag) => {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "invalid parameter \"{}\" in \"ferrocorn_param\"",
                // SAFETY: as above.
                String::from_utf8_lossy(unsafe { str_bytes(flag) })
            );
            return NGX_CONF_ERROR;
        }
    };
    if name.len == 0 {
        ngx_conf_log_error!(NGX_LOG_EMERG, cf, "empty name in \"ferrocorn_param\"");
        return NGX_CONF_ERROR;
    }

    if lcf.params.is_null() {
        // SAFETY: cf's pool outlives the configuration.
        lcf.params = unsafe { ngx_array_create(cf_ref.pool, 4, mem::size_of::<ParamConf>()) };
        if lcf.params.is_null() {
            return NGX_CONF_ERROR;
        }
    }
    // SAFETY: params is an array of ParamConf; push returns room for one.
    let param = unsafe { ngx_array_push(lcf.params) }.cast::<ParamConf>();
    if param.is_null() {
        return NGX_CONF_ERROR;
    }
    // SAFETY: `param` is fresh, aligned storage for one ParamConf; all-zero
    // is a valid ParamConf before the compiler fills `value`.
    let param = unsafe {
        param.write(mem::zeroed());
        &mut *param
    };
    param.name = name;
    param.skip_empty = skip_empty;

    // SAFETY: plain data; all-zero means no flags.
    let mut ccv: ngx_http_compile_complex_value_t = unsafe { mem::zeroed() };
    ccv.cf = cf;
    ccv.value = &mut value;
    ccv.complex_value = &mut param.value;
    // SAFETY: ccv points at live values; nginx copies the source string.
    if unsafe { ngx_http_compile_complex_value(&mut ccv) } != OK {
        return NGX_CONF_ERROR;
    }
    NGX_CONF_OK
}

/// `ferrocorn_store on | off | PATH;` — as `uwsgi_store`: PATH may hold
/// variables and is compiled into nginx's store scripts.
///
/// # Safety
/// Called by nginx for the directive, with `conf` our [`LocConf`].
pub unsafe extern "C" fn set_store(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes the directive's conf and our loc conf for this level.
    let (cf_ref, lcf) = unsafe { (&*cf, &mut *conf.cast::<LocConf>()) };
    let u = &mut lcf.upstream;
    if signed_2bit(u.store()) != UNSET_FLAG as i32 {
        return c"is duplicate".as_ptr().cast_mut();
    }
    // SAFETY: cf is inside a directive setter; the argument lives in the conf pool.
    let mut value = unsafe { args(cf_ref) }[1];
    // SAFETY: as above.
    match unsafe { str_bytes(&value) } {
        b"off" => {
            u.set_store(0);
            return NGX_CONF_OK;
        }
        b"" => {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "empty path");
            return NGX_CONF_ERROR;
        }
        _ => {}
    }
    if signed_2bit(u.cache()) > 0 {
        return c"is incompatible with \"ferrocorn_cache\""
            .as_ptr()
            .cast_mut();
    }
    u.set_store(1);
    // SAFETY: as above.
    if unsafe { str_bytes(&value) } == b"on" {
        return NGX_CONF_OK;
    }
    // The script includes the terminating NUL (nginx's config parser leaves
    // one after every argument), as uwsgi_store does.
    value.len += 1;
    // SAFETY: plain data; all-zero means no flags.
    let mut sc: ngx_http_script_compile_t = unsafe { mem::zeroed() };
    sc.cf = cf;
    sc.source = &mut value;
    sc.lengths = &mut u.store_lengths;
    sc.values = &mut u.store_values;
    // SAFETY: value is a live conf string.
    sc.variables = unsafe { ngx_http_script_variables_count(&mut value) };
    sc.set_complete_lengths(1);
    sc.set_complete_values(1);
    // SAFETY: sc points at live values; nginx allocates from the conf pool.
    if unsafe { ngx_http_script_compile(&mut sc) } != OK {
        return NGX_CONF_ERROR;
    }
    NGX_CONF_OK
}

/// `ferrocorn_cache ZONE | off;` — as `uwsgi_cache`: a zone name with
/// variables is resolved per request among the `ferrocorn_cache_path` zones.
///
/// # Safety
/// Called by nginx for the directive, with `conf` our [`LocConf`].
pub unsafe extern "C" fn set_cache(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes the directive's conf and our loc conf for this level.
    let (cf_ref, lcf) = unsafe { (&*cf, &mut *conf.cast::<LocConf>()) };
    let u = &mut lcf.upstream;
    if signed_2bit(u.cache()) != UNSET_FLAG as i32 {
        return c"is duplicate".as_ptr().cast_mut();
    }
    // SAFETY: cf is inside a directive setter; the argument lives in the conf pool.
    let mut value = unsafe { args(cf_ref) }[1];
    // SAFETY: as above.
    if unsafe { str_bytes(&value) } == b"off" {
        u.set_cache(0);
        return NGX_CONF_OK;
    }
    if signed_2bit(u.store()) > 0 {
        return c"is incompatible with \"ferrocorn_store\""
            .as_ptr()
            .cast_mut();
    }
    u.set_cache(1);

    // SAFETY: plain data; all-zero is an empty complex value.
    let mut cv: ngx_http_complex_value_t = unsafe { mem::zeroed() };
    // SAFETY: plain data; all-zero means no flags.
    let mut ccv: ngx_http_compile_complex_value_t = unsafe { mem::zeroed() };
    ccv.cf = cf;
    ccv.value = &mut value;
    ccv.complex_value = &mut cv;
    // SAFETY: ccv points at live values; nginx copies the source string.
    if unsafe { ngx_http_compile_complex_value(&mut ccv) } != OK {
        return NGX_CONF_ERROR;
    }
    if !cv.lengths.is_null() {
        // SAFETY: conf pool allocation for one complex value.
        let slot = unsafe { ngx_palloc(cf_ref.pool, mem::size_of::<ngx_http_complex_value_t>()) }
            .cast::<ngx_http_complex_value_t>();
        if slot.is_null() {
            return NGX_CONF_ERROR;
        }
        // SAFETY: fresh, aligned storage for one complex value.
        unsafe { slot.write(cv) };
        u.cache_value = slot;
        return NGX_CONF_OK;
    }
    // SAFETY: cf is live; the zone is tagged with our module, like the
    // ones ferrocorn_cache_path creates, so nginx pairs them by name.
    u.cache_zone = unsafe {
        ngx_shared_memory_add(
            cf,
            &mut value,
            0,
            core::ptr::addr_of_mut!(crate::ngx_http_ferrocorn_module).cast(),
        )
    };
    if u.cache_zone.is_null() {
        return NGX_CONF_ERROR;
    }
    NGX_CONF_OK
}

/// `ferrocorn_cache_key STRING;` (variables allowed), compiled once.
///
/// # Safety
/// Called by nginx for the directive, with `conf` our [`LocConf`].
pub unsafe extern "C" fn set_cache_key(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes the directive's conf and our loc conf for this level.
    let (cf_ref, lcf) = unsafe { (&*cf, &mut *conf.cast::<LocConf>()) };
    if !lcf.cache_key.value.data.is_null() {
        return c"is duplicate".as_ptr().cast_mut();
    }
    // SAFETY: cf is inside a directive setter; the argument lives in the conf pool.
    let mut value = unsafe { args(cf_ref) }[1];
    // SAFETY: plain data; all-zero means no flags.
    let mut ccv: ngx_http_compile_complex_value_t = unsafe { mem::zeroed() };
    ccv.cf = cf;
    ccv.value = &mut value;
    ccv.complex_value = &mut lcf.cache_key;
    // SAFETY: ccv points at live values; nginx copies the source string.
    if unsafe { ngx_http_compile_complex_value(&mut ccv) } != OK {
        return NGX_CONF_ERROR;
    }
    NGX_CONF_OK
}

/// `ferrocorn_keepalive N | off;` (http) — idle connections per nginx
/// worker process that each address `ferrocorn_pass` names directly keeps
/// to the supervisor (see [`crate::keepalive`]); `off`: none.
///
/// # Safety
/// Called by nginx for the directive, with `conf` our [`MainConf`].
pub unsafe extern "C" fn set_keepalive(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes the directive's conf and our main conf.
    let (cf_ref, mcf) = unsafe { (&*cf, &mut *conf.cast::<MainConf>()) };
    if mcf.keepalive.max_cached != UNSET_UINT {
        return c"is duplicate".as_ptr().cast_mut();
    }
    // SAFETY: cf is inside a directive setter; the argument lives in the conf pool.
    let value = unsafe { str_bytes(&args(cf_ref)[1]) };
    let parsed = match value {
        b"off" => Some(0),
        _ if !value.is_empty() && value.len() <= 9 && value.iter().all(u8::is_ascii_digit) => {
            std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<ngx_uint_t>().ok())
                .filter(|&n| n > 0)
        }
        _ => None,
    };
    let Some(n) = parsed else {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "invalid value \"{}\" in \"ferrocorn_keepalive\": expected a number of \
             connections (1 or more) or \"off\"",
            String::from_utf8_lossy(value)
        );
        return NGX_CONF_ERROR;
    };
    mcf.keepalive.max_cached = n;
    NGX_CONF_OK
}
