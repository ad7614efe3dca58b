//! Errors are values with context: the op, the shapes, the device, the file.

use std::path::PathBuf;

/// Everything wgtrain can fail with. Every variant says what was expected.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Operands of an op do not fit together.
    #[error("{op}: shape mismatch: {detail}")]
    Shape { op: &'static str, detail: String },

    /// A request that exceeds what the device allows and that wgtrain cannot split.
    #[error("{op}: {what} is {got}, but the device allows at most {limit}")]
    Limit { op: &'static str, what: String, got: u64, limit: u64 },

    /// No adapter matched, or none exists.
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),

    /// The adapter refused the device request.
    #[error("requesting a device from {adapter}: {message}")]
    RequestDevice { adapter: String, message: String },

    /// wgpu reported a validation, out-of-memory or internal error.
    #[error("GPU error while {context}: {message}")]
    Gpu { context: String, message: String },

    /// The device was lost (driver reset, removal, ...).
    #[error("GPU device lost: {0}")]
    DeviceLost(String),

    /// A bad argument (a name, a value) from the user.
    #[error("{0}")]
    Invalid(String),

    /// A reference case file is malformed or names something the engine cannot run.
    #[error("{}: {field}: {message}", path.display())]
    CaseFile { path: PathBuf, field: String, message: String },

    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn shape_err(op: &'static str, detail: impl Into<String>) -> Error {
    Error::Shape { op, detail: detail.into() }
}
