//! `wsgi.file_wrapper`: wraps a file-like object as the response body.
//! Iterating it reads `blksize` blocks; when it wraps a real binary file,
//! the driver sends the file with `sendfile` instead (see
//! [`regular_file`]), never copying the data through Python.

use std::os::fd::{BorrowedFd, OwnedFd};

use pyo3::intern;
use pyo3::prelude::*;

#[pyclass(frozen, module = "ferrocorn", name = "FileWrapper")]
pub struct FileWrapper {
    filelike: Py<PyAny>,
    blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize = 8192))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> FileWrapper {
        FileWrapper {
            filelike,
            blksize: blksize.max(1),
        }
    }

    #[getter]
    fn filelike(&self, py: Python<'_>) -> Py<PyAny> {
        self.filelike.clone_ref(py)
    }

    #[getter]
    fn blksize(&self) -> usize {
        self.blksize
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let data = self
            .filelike
            .bind(py)
            .call_method1(intern!(py, "read"), (self.blksize,))?;
        Ok((data.len()? > 0).then_some(data))
    }

    /// Closes the wrapped file, if it can be closed.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(close) = self.filelike.bind(py).getattr_opt(intern!(py, "close"))? {
            close.call0()?;
        }
        Ok(())
    }
}

/// The rest of a wrapped regular file, ready for `sendfile`.
pub struct FileRange {
    /// A duplicate of the file's descriptor: the app may close its own.
    pub fd: OwnedFd,
    pub offset: i64,
    pub len: u64,
}

/// When `wrapper` wraps a binary file on disk, a duplicate of its
/// descriptor and the range from its current position to its end. `None`
/// for anything else (BytesIO, sockets, text files), which is iterated.
pub fn regular_file(py: Python<'_>, wrapper: &FileWrapper) -> Option<FileRange> {
    let filelike = wrapper.filelike.bind(py);
    if let Ok(Some(mode)) = filelike.getattr_opt(intern!(py, "mode")) {
        if !mode.str().is_ok_and(|m| m.to_string_lossy().contains('b')) {
            return None;
        }
    }
    let raw: i32 = filelike
        .call_method0(intern!(py, "fileno"))
        .and_then(|n| n.extract())
        .ok()?;
    // The logical position, which accounts for Python's read buffer.
    let offset: i64 = filelike
        .call_method0(intern!(py, "tell"))
        .and_then(|n| n.extract())
        .ok()?;
    // SAFETY: the file object owns `raw` and keeps it open while we hold
    // the GIL, which we do until `dup` returns our own descriptor.
    let borrowed = unsafe { BorrowedFd::borrow_raw(raw) };
    let fd = nix::unistd::dup(borrowed).ok()?;
    let stat = nix::sys::stat::fstat(&fd).ok()?;
    if stat.st_mode & libc::S_IFMT != libc::S_IFREG || offset < 0 {
        return None;
    }
    let len = u64::try_from(stat.st_size - offset).unwrap_or(0);
    Some(FileRange { fd, offset, len })
}
