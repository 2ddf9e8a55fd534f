pub use ferrocorn_protocol as _p;
