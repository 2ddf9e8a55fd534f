//! What the `ngx` bindings lack, and the few raw-pointer helpers every
//! callback shares.
//!
//! The `NGX_CONF_UNSET_*` macros are casts bindgen cannot express, so they
//! are spelled out here. The helpers turn nginx's `(pointer, length)` pairs
//! and per-module arrays into Rust references; each states what it assumes.

use core::ffi::c_void;
use core::ptr;

use ngx::ffi::{
    ngx_buf_t, ngx_chain_t, ngx_flag_t, ngx_http_request_t, ngx_int_t, ngx_list_t, ngx_module_t,
    ngx_msec_t, ngx_str_t, ngx_table_elt_t, ngx_uint_t, NGX_CONF_UNSET,
};

/// `NGX_CONF_UNSET` for `ngx_flag_t` / `ngx_int_t` fields.
pub const UNSET_FLAG: ngx_flag_t = NGX_CONF_UNSET as ngx_flag_t;
/// `NGX_CONF_UNSET_UINT`: `(ngx_uint_t) -1`.
pub const UNSET_UINT: ngx_uint_t = ngx_uint_t::MAX;
/// `NGX_CONF_UNSET_SIZE`: `(size_t) -1`.
pub const UNSET_SIZE: usize = usize::MAX;
/// `NGX_CONF_UNSET_MSEC`: `(ngx_msec_t) -1`.
pub const UNSET_MSEC: ngx_msec_t = ngx_msec_t::MAX;

/// `NGX_CONF_UNSET_PTR`: `(void *) -1`, typed for the field it marks.
pub fn unset_ptr<T>() -> *mut T {
    ptr::null_mut::<u8>().wrapping_sub(1).cast()
}

/// The upstream conf's `cache` and `store` are 2-bit *signed* bitfields
/// (`NGX_CONF_UNSET` is stored as 0b11); bindgen's getters return them
/// unsigned, so this sign-extends them back (-1, 0 or 1).
pub fn signed_2bit(v: core::ffi::c_int) -> core::ffi::c_int {
    (v << 30) >> 30
}

/// `NGX_OK`, `NGX_ERROR`, `NGX_AGAIN`, `NGX_DONE` as the `ngx_int_t` that
/// callbacks return (bindgen types them `u32` / `i32`).
pub const OK: ngx_int_t = ngx::ffi::NGX_OK as ngx_int_t;
pub const ERROR: ngx_int_t = ngx::ffi::NGX_ERROR as ngx_int_t;
pub const AGAIN: ngx_int_t = ngx::ffi::NGX_AGAIN as ngx_int_t;
pub const DONE: ngx_int_t = ngx::ffi::NGX_DONE as ngx_int_t;

/// The bytes of an `ngx_str_t`, with the lifetime the caller picks.
///
/// # Safety
/// `s.data` must point to `s.len` bytes that outlive `'a` (nginx strings
/// live in a pool at least as long as the request or configuration).
pub unsafe fn str_bytes<'a>(s: &ngx_str_t) -> &'a [u8] {
    if s.len == 0 || s.data.is_null() {
        &[]
    } else {
        // SAFETY: the caller guarantees `data` holds `len` live bytes.
        unsafe { core::slice::from_raw_parts(s.data, s.len) }
    }
}

/// The bytes between two buffer pointers (`pos..last`).
///
/// # Safety
/// `pos..last` must be a valid range inside one buffer that outlives `'a`.
pub unsafe fn span<'a>(pos: *const u8, last: *const u8) -> &'a [u8] {
    if pos.is_null() || last <= pos {
        &[]
    } else {
        // SAFETY: the caller guarantees both pointers lie in one live buffer.
        unsafe { core::slice::from_raw_parts(pos, last.offset_from(pos) as usize) }
    }
}

/// `ngx_buf_in_memory(b)`.
pub fn buf_in_memory(b: &ngx_buf_t) -> bool {
    b.temporary() != 0 || b.memory() != 0 || b.mmap() != 0
}

/// `ngx_buf_size(b)`: memory bytes if the buffer is in memory, else file bytes.
pub fn buf_size(b: &ngx_buf_t) -> u64 {
    if buf_in_memory(b) {
        // Pointers of one buffer; a well-formed buffer has pos <= last.
        (b.last as usize).saturating_sub(b.pos as usize) as u64
    } else {
        (b.file_last - b.file_pos).max(0) as u64
    }
}

/// The elements of an `ngx_list_t` of `ngx_table_elt_t` (header lists),
/// in order, across its parts.
///
/// # Safety
/// `list` must be an initialised list of `ngx_table_elt_t` that is not
/// modified while the iterator lives.
pub unsafe fn table_elts(list: &ngx_list_t) -> impl Iterator<Item = &ngx_table_elt_t> {
    let mut part = &list.part;
    let mut i = 0;
    core::iter::from_fn(move || loop {
        if i < part.nelts {
            // SAFETY: `elts` holds `nelts` table elements (list contract).
            let elt = unsafe { &*part.elts.cast::<ngx_table_elt_t>().add(i) };
            i += 1;
            return Some(elt);
        }
        // SAFETY: `next` is NULL or the following part of the same list.
        part = unsafe { part.next.as_ref() }?;
        i = 0;
    })
}

/// The buffers of a chain, in order.
///
/// # Safety
/// `cl` must be NULL or a well-formed chain whose links and buffers outlive
/// the iterator and are not relinked while it lives.
pub unsafe fn chain_bufs<'a>(mut cl: *mut ngx_chain_t) -> impl Iterator<Item = &'a ngx_buf_t> {
    core::iter::from_fn(move || {
        // SAFETY: per the contract, `cl` is NULL or a live link.
        let link = unsafe { cl.as_ref() }?;
        cl = link.next;
        // SAFETY: a link of a well-formed chain points at a live buffer.
        Some(unsafe { &*link.buf })
    })
}

/// `ngx_http_get_module_ctx(r, module)`.
///
/// # Safety
/// `r` must be a live request and `module` an HTTP module, so that
/// `r.ctx[module.ctx_index]` exists; the stored pointer, if any, must be a
/// `T` that module placed there.
pub unsafe fn request_ctx<'a, T>(
    r: &ngx_http_request_t,
    module: &ngx_module_t,
) -> Option<&'a mut T> {
    // SAFETY: per the contract above, the slot exists and holds a `T` or NULL.
    unsafe { (*r.ctx.add(module.ctx_index)).cast::<T>().as_mut() }
}

/// `ngx_http_set_ctx(r, ctx, module)`.
///
/// # Safety
/// As for [`request_ctx`]; `ctx` must live as long as the request.
pub unsafe fn set_request_ctx<T>(r: &ngx_http_request_t, module: &ngx_module_t, ctx: *mut T) {
    // SAFETY: the slot exists for every HTTP module.
    unsafe { *r.ctx.add(module.ctx_index) = ctx.cast::<c_void>() };
}

/// `ngx_http_get_module_loc_conf(r, module)`.
///
/// # Safety
/// `r` must be a live request and `T` the module's location conf type.
pub unsafe fn request_loc_conf<'a, T>(r: &ngx_http_request_t, module: &ngx_module_t) -> &'a T {
    // SAFETY: every HTTP module with create_loc_conf has its slot filled.
    unsafe { &*(*r.loc_conf.add(module.ctx_index)).cast::<T>() }
}

/// `ngx_http_get_module_srv_conf(r, module)`.
///
/// # Safety
/// As for [`request_loc_conf`], for the server conf.
pub unsafe fn request_srv_conf<'a, T>(r: &ngx_http_request_t, module: &ngx_module_t) -> &'a T {
    // SAFETY: as above.
    unsafe { &*(*r.srv_conf.add(module.ctx_index)).cast::<T>() }
}

/// `ngx_http_get_module_main_conf(r, module)`.
///
/// # Safety
/// As for [`request_loc_conf`], for the main conf.
pub unsafe fn request_main_conf<'a, T>(r: &ngx_http_request_t, module: &ngx_module_t) -> &'a T {
    // SAFETY: as above.
    unsafe { &*(*r.main_conf.add(module.ctx_index)).cast::<T>() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_values_are_all_ones() {
        assert_eq!(UNSET_FLAG, -1);
        assert_eq!(UNSET_UINT as isize, -1);
        assert_eq!(UNSET_SIZE as isize, -1);
        assert_eq!(UNSET_MSEC as isize, -1);
        assert_eq!(unset_ptr::<u8>() as isize, -1);
    }

    #[test]
    fn two_bit_flags_sign_extend() {
        assert_eq!(signed_2bit(3), -1);
        assert_eq!(signed_2bit(1), 1);
        assert_eq!(signed_2bit(0), 0);
    }

    #[test]
    fn empty_strings_and_spans_are_empty_slices() {
        let s = ngx_str_t {
            len: 0,
            data: ptr::null_mut(),
        };
        // SAFETY: an empty string touches no memory.
        assert!(unsafe { str_bytes(&s) }.is_empty());
        let data = *b"abc";
        // SAFETY: both pointers are inside `data`.
        let got = unsafe { span(data.as_ptr(), data.as_ptr().add(3)) };
        assert_eq!(got, b"abc");
        // SAFETY: a reversed range is treated as empty and never read.
        assert!(unsafe { span(data.as_ptr().add(2), data.as_ptr()) }.is_empty());
    }
}
