//! nginx's `ngx_conf_merge_*_value` macros as functions: a level's own
//! value wins, else its parent's, else the default. "Unset" is the
//! `NGX_CONF_UNSET_*` marker of each type, never 0 (stock slots store 0 as a
//! real value).

use core::ptr;

use ngx::ffi::{ngx_bufs_t, ngx_flag_t, ngx_msec_t, ngx_uint_t};

use crate::ffi::{unset_ptr, UNSET_FLAG, UNSET_MSEC, UNSET_SIZE, UNSET_UINT};

/// `ngx_align(d, a)`.
pub fn align(d: usize, a: usize) -> usize {
    (d + (a - 1)) & !(a - 1)
}

/// A size derived from another unless configured (`*_conf` fields).
pub fn derived(configured: usize, default: usize) -> usize {
    if configured == UNSET_SIZE {
        default
    } else {
        configured
    }
}

pub fn merge_flag(conf: &mut ngx_flag_t, prev: ngx_flag_t, default: ngx_flag_t) {
    if *conf == UNSET_FLAG {
        *conf = if prev == UNSET_FLAG { default } else { prev };
    }
}

pub fn merge_uint(conf: &mut ngx_uint_t, prev: ngx_uint_t, default: ngx_uint_t) {
    if *conf == UNSET_UINT {
        *conf = if prev == UNSET_UINT { default } else { prev };
    }
}

pub fn merge_msec(conf: &mut ngx_msec_t, prev: ngx_msec_t, default: ngx_msec_t) {
    if *conf == UNSET_MSEC {
        *conf = if prev == UNSET_MSEC { default } else { prev };
    }
}

pub fn merge_size(conf: &mut usize, prev: usize, default: usize) {
    if *conf == UNSET_SIZE {
        *conf = if prev == UNSET_SIZE { default } else { prev };
    }
}

/// `ngx_conf_merge_ptr_value` with a NULL default.
pub fn merge_ptr<T>(conf: &mut *mut T, prev: *mut T) {
    if *conf == unset_ptr() {
        *conf = if prev == unset_ptr() {
            ptr::null_mut()
        } else {
            prev
        };
    }
}

pub fn merge_bufs(conf: &mut ngx_bufs_t, prev: ngx_bufs_t, num: isize, size: usize) {
    if conf.num == 0 {
        *conf = if prev.num != 0 {
            prev
        } else {
            ngx_bufs_t { num, size }
        };
    }
}

pub fn merge_bitmask(conf: &mut ngx_uint_t, prev: ngx_uint_t, default: ngx_uint_t) {
    if *conf == 0 {
        *conf = if prev == 0 { default } else { prev };
    }
}

/// The default `ferrocorn_temp_path`, NUL-terminated, computed once per process.
pub static DEFAULT_TEMP_PATH: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

/// `ferrocorn_temp_path`'s default, derived from nginx's configured
/// `--http-uwsgi-temp-path`: the same directory with `ferrocorn` as the last
/// component (Debian: `/var/lib/nginx/uwsgi` → `/var/lib/nginx/ferrocorn`),
/// or `ferrocorn_temp` under the prefix when uwsgi's is the relative default.
pub fn default_temp_path(uwsgi_temp: &[u8]) -> Vec<u8> {
    match uwsgi_temp.iter().rposition(|&b| b == b'/') {
        Some(slash) => [&uwsgi_temp[..=slash], b"ferrocorn"].concat(),
        None => b"ferrocorn_temp".to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_path_sits_beside_the_configured_uwsgi_one() {
        assert_eq!(default_temp_path(b"uwsgi_temp"), b"ferrocorn_temp");
        assert_eq!(
            default_temp_path(b"/var/lib/nginx/uwsgi"),
            b"/var/lib/nginx/ferrocorn"
        );
        assert_eq!(default_temp_path(b"/uwsgi"), b"/ferrocorn");
    }

    #[test]
    fn merge_prefers_own_then_parent_then_default() {
        let mut own = 5;
        merge_flag(&mut own, 7, 1);
        assert_eq!(own, 5);
        let mut unset = UNSET_FLAG;
        merge_flag(&mut unset, 7, 1);
        assert_eq!(unset, 7);
        let mut unset = UNSET_FLAG;
        merge_flag(&mut unset, UNSET_FLAG, 1);
        assert_eq!(unset, 1);

        let mut t = UNSET_MSEC;
        merge_msec(&mut t, UNSET_MSEC, 60_000);
        assert_eq!(t, 60_000);
        let mut s = UNSET_SIZE;
        merge_size(&mut s, 8192, 4096);
        assert_eq!(s, 8192);
        let mut n = UNSET_UINT;
        merge_uint(&mut n, UNSET_UINT, 0);
        assert_eq!(n, 0);
    }

    #[test]
    fn zero_means_set_for_stock_slots() {
        // A configured 0 (e.g. `ferrocorn_read_timeout 0`) is a value, not "unset".
        let mut t: ngx_msec_t = 0;
        merge_msec(&mut t, 30_000, 60_000);
        assert_eq!(t, 0);
    }

    #[test]
    fn pointers_bufs_and_bitmasks() {
        let mut x = 1u8;
        let mut p: *mut u8 = unset_ptr();
        merge_ptr(&mut p, unset_ptr());
        assert!(p.is_null());
        let mut p: *mut u8 = unset_ptr();
        merge_ptr(&mut p, &mut x);
        assert_eq!(p, &mut x as *mut u8);

        let mut b = ngx_bufs_t { num: 0, size: 0 };
        merge_bufs(&mut b, ngx_bufs_t { num: 0, size: 0 }, 8, 4096);
        assert_eq!((b.num, b.size), (8, 4096));
        let mut b = ngx_bufs_t { num: 0, size: 0 };
        merge_bufs(
            &mut b,
            ngx_bufs_t {
                num: 4,
                size: 16384,
            },
            8,
            4096,
        );
        assert_eq!((b.num, b.size), (4, 16384));

        let mut m = 0;
        merge_bitmask(&mut m, 0, 6);
        assert_eq!(m, 6);
    }

    #[test]
    fn derived_sizes_and_alignment() {
        assert_eq!(derived(UNSET_SIZE, 8192), 8192);
        assert_eq!(derived(0, 8192), 0);
        assert_eq!(align(64, 64), 64);
        assert_eq!(align(64, 128), 128);
        assert_eq!(align(65, 64), 128);
    }
}
