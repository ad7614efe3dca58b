//! Errors are values with context: the op, the shapes, the device, the file.

use std::path::PathBuf;

/// Everything wgtrain can fail with. Every variant says what was expected.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Operands of an op do not fit together.
    #[error("{op}: shape mismatch: {detail}")]
    Shape {
        /// The op that checked the shapes.
        op: &'static str,
        /// What did not fit, with the shapes.
        detail: String,
    },

    /// A request that exceeds what the device allows and that wgtrain cannot split.
    #[error("{op}: {what} is {got}, but the device allows at most {limit}")]
    Limit {
        /// The op that made the request.
        op: &'static str,
        /// What was counted, with its unit ("elements", "a storage binding in bytes").
        what: String,
        /// The size asked for.
        got: u64,
        /// The most the device (or a u32 index) allows.
        limit: u64,
    },

    /// No adapter matched, or none exists.
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),

    /// The adapter refused the device request.
    #[error("requesting a device from {adapter}: {message}")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        /// wgpu's reason.
        message: String,
    },

    /// wgpu reported a validation, out-of-memory or internal error.
    #[error("GPU error while {context}: {message}")]
    Gpu {
        /// What wgtrain was doing ("reading back a tensor").
        context: String,
        /// wgpu's message.
        message: String,
    },

    /// The device was lost (driver reset, removal, ...).
    #[error("GPU device lost: {0}")]
    DeviceLost(String),

    /// A bad argument (a name, a value) from the user.
    #[error("{0}")]
    Invalid(String),

    /// A reference case file is malformed or names something the engine cannot run.
    #[error("{}: {field}: {message}", path.display())]
    CaseFile {
        /// The case file.
        path: PathBuf,
        /// The field at fault (a JSON key, or a tensor name).
        field: String,
        /// What is wrong with it.
        message: String,
    },

    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// `std::result::Result` with wgtrain's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn shape_err(op: &'static str, detail: impl Into<String>) -> Error {
    Error::Shape { op, detail: detail.into() }
}
