//! Native strings per PEP 3333: `str` objects whose code points are the
//! bytes, i.e. latin-1, in both directions, without guessing encodings.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;

/// A `str` whose characters are `bytes`, one for one.
pub fn to_str<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    // SAFETY: the pointer and length describe `bytes`, valid for the call;
    // a null result (only MemoryError) becomes the Python error; otherwise
    // the new reference is owned by the returned Bound.
    unsafe {
        let ptr = ffi::PyUnicode_DecodeLatin1(
            bytes.as_ptr().cast(),
            bytes.len() as ffi::Py_ssize_t,
            std::ptr::null(),
        );
        Ok(Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked())
    }
}

/// The latin-1 bytes of `s`, borrowed from the string object; `None` when
/// a character is above U+00FF (such a string is not a native string).
pub fn bytes_of<'a>(s: &'a Bound<'_, PyString>) -> PyResult<Option<&'a [u8]>> {
    // SAFETY: `data` reads CPython's compact string layout, which PyO3
    // tests on the x86_64/aarch64 Linux targets we ship. A string whose
    // widest character fits in one byte is stored as UCS-1, which is
    // latin-1; the slice borrows the immutable string `s` keeps alive.
    match unsafe { s.data() }? {
        pyo3::types::string::PyStringData::Ucs1(bytes) => Ok(Some(bytes)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_byte() {
        crate::python::test_support::with_python(|py| {
            let all: Vec<u8> = (0..=255).collect();
            let s = to_str(py, &all).unwrap();
            assert_eq!(s.to_string_lossy().chars().count(), 256);
            assert_eq!(bytes_of(&s).unwrap().unwrap(), &all[..]);
            let wide = PyString::new(py, "snowman \u{2603}");
            assert_eq!(bytes_of(&wide).unwrap(), None);
            assert_eq!(bytes_of(&PyString::new(py, "")).unwrap().unwrap(), b"");
        });
    }
}
