//! Resolves `MODULE[:EXPRESSION]` to the WSGI callable, like Gunicorn's
//! `import_app`: `mod:app`, `mod` (meaning `mod:application`),
//! `mod:create_app()` and `mod:make("x", debug=True)` (literal arguments,
//! parsed with Python's `ast`).

use pyo3::exceptions::{PyAttributeError, PySyntaxError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use super::traceback;

/// Why the app could not be loaded; the worker exits with code 4.
pub enum LoadError {
    /// An exception while importing or building the app: log its traceback.
    Exception(PyErr),
    /// A problem with the spec or the object found: one line says it.
    Message(String),
}

impl LoadError {
    /// Writes the reason to the error log.
    pub fn log(&self, py: Python<'_>) {
        match self {
            LoadError::Exception(err) => {
                let text =
                    traceback::traceback(py, err).unwrap_or_else(|| traceback::describe(py, err));
                error!("Exception in worker process\n{}", text.trim_end());
            }
            LoadError::Message(msg) => error!("{msg}"),
        }
    }
}

impl From<PyErr> for LoadError {
    fn from(err: PyErr) -> Self {
        LoadError::Exception(err)
    }
}

/// The callable named by `spec`.
pub fn load<'py>(py: Python<'py>, spec: &str) -> Result<Py<PyAny>, LoadError> {
    let (module, expr) = spec.split_once(':').unwrap_or((spec, "application"));
    let ast = py.import("ast")?;
    let unparsable = || {
        LoadError::Message(format!(
            "Failed to parse '{expr}' as an attribute name or function call."
        ))
    };
    let kwargs = PyDict::new(py);
    kwargs.set_item("mode", "eval")?;
    let body = match ast.call_method("parse", (expr,), Some(&kwargs)) {
        Ok(tree) => tree.getattr("body")?,
        Err(e) if e.is_instance_of::<PySyntaxError>(py) => return Err(unparsable()),
        Err(e) => return Err(e.into()),
    };

    let (name, call) = if body.is_instance(&ast.getattr("Name")?)? {
        (body.getattr("id")?.extract::<String>()?, None)
    } else if body.is_instance(&ast.getattr("Call")?)? {
        let func = body.getattr("func")?;
        if !func.is_instance(&ast.getattr("Name")?)? {
            return Err(LoadError::Message(format!(
                "Function reference must be a simple name: '{expr}'"
            )));
        }
        let literal = |node: Bound<'py, PyAny>| -> Result<Bound<'py, PyAny>, LoadError> {
            ast.call_method1("literal_eval", (node,)).map_err(|e| {
                if e.is_instance_of::<PyValueError>(py) || e.is_instance_of::<PySyntaxError>(py) {
                    LoadError::Message(format!(
                        "Failed to parse arguments as literal values: '{expr}'"
                    ))
                } else {
                    LoadError::Exception(e)
                }
            })
        };
        let args = PyList::empty(py);
        for arg in body.getattr("args")?.try_iter()? {
            args.append(literal(arg?)?)?;
        }
        let kwargs = PyDict::new(py);
        for keyword in body.getattr("keywords")?.try_iter()? {
            let keyword = keyword?;
            let Ok(key) = keyword.getattr("arg")?.extract::<String>() else {
                return Err(LoadError::Message(format!(
                    "Failed to parse arguments as literal values: '{expr}'"
                )));
            };
            kwargs.set_item(key, literal(keyword.getattr("value")?)?)?;
        }
        (
            func.getattr("id")?.extract::<String>()?,
            Some((PyTuple::new(py, args)?, kwargs)),
        )
    } else {
        return Err(unparsable());
    };

    let module_obj = match py.import(module) {
        Ok(m) => m,
        Err(e) => {
            let file = std::path::Path::new(module).with_extension("py");
            if module.ends_with(".py") || file.exists() && module.ends_with(".py") {
                let stem = module.trim_end_matches(".py");
                return Err(LoadError::Message(format!(
                    "Failed to find application, did you mean '{stem}:{expr}'?"
                )));
            }
            return Err(e.into());
        }
    };
    let mut app = match module_obj.getattr(name.as_str()) {
        Ok(app) => app,
        Err(e) if e.is_instance_of::<PyAttributeError>(py) => {
            return Err(LoadError::Message(format!(
                "Failed to find attribute '{name}' in '{module}'."
            )))
        }
        Err(e) => return Err(e.into()),
    };
    if let Some((args, kwargs)) = call {
        app = app.call(args, Some(&kwargs))?;
    }
    if app.is_none() {
        return Err(LoadError::Message(format!(
            "Failed to find application object: '{expr}'"
        )));
    }
    if !app.is_callable() {
        return Err(LoadError::Message(
            "Application object must be callable.".into(),
        ));
    }
    Ok(app.unbind())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::python::test_support::with_python;

    fn message(py: Python<'_>, spec: &str) -> String {
        match load(py, spec) {
            Err(LoadError::Message(m)) => m,
            Err(LoadError::Exception(e)) => format!("exception: {}", traceback::describe(py, &e)),
            Ok(_) => "loaded".into(),
        }
    }

    #[test]
    fn specs_resolve_like_gunicorn() {
        with_python(|py| {
            // Stdlib callables stand in for apps.
            assert_eq!(message(py, "os.path:join"), "loaded");
            assert_eq!(message(py, "operator:itemgetter(1)"), "loaded");
            assert_eq!(message(py, "functools:lru_cache(maxsize=3)"), "loaded");
            assert_eq!(message(py, "operator:attrgetter('a', 'b')"), "loaded");
            assert_eq!(
                message(py, "os:nope"),
                "Failed to find attribute 'nope' in 'os'."
            );
            assert_eq!(
                message(py, "os"),
                "Failed to find attribute 'application' in 'os'."
            );
            assert_eq!(
                message(py, "os:sep"),
                "Application object must be callable."
            );
            assert_eq!(
                message(py, "os:a.b"),
                "Failed to parse 'a.b' as an attribute name or function call."
            );
            assert_eq!(
                message(py, "os:(("),
                "Failed to parse '((' as an attribute name or function call."
            );
            assert_eq!(
                message(py, "os:path.join()"),
                "Function reference must be a simple name: 'path.join()'"
            );
            assert_eq!(
                message(py, "os:getenv(x)"),
                "Failed to parse arguments as literal values: 'os:getenv(x)'".replace("os:", "")
            );
            assert!(message(py, "no_such_module_xyz:app").contains("ModuleNotFoundError"));
            assert_eq!(
                message(py, "app.py"),
                "Failed to find application, did you mean 'app:application'?"
            );
        });
    }
}
