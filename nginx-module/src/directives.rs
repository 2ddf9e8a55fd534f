//! The two directives with code of their own: `ferrocorn_pass` and
//! `ferrocorn_param`. Every other directive is a stock nginx slot.
//!
//! A bad argument fails `nginx -t` with a line naming the directive and the
//! value, e.g. `invalid value "unix:" in "ferrocorn_pass": ...`.

use core::ffi::{c_char, c_void};
use core::mem;

use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_array_create, ngx_array_push, ngx_command_t, ngx_conf_t, ngx_http_compile_complex_value,
    ngx_http_compile_complex_value_t, ngx_http_core_loc_conf_t, ngx_http_upstream_add, ngx_str_t,
    ngx_url_t, NGX_LOG_EMERG,
};
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};
use ngx::ngx_conf_log_error;

use crate::config::{LocConf, ParamConf};
use crate::ffi::{str_bytes, OK};
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
