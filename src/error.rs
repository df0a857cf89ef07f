//! Stable error codes. JS sees them as `err.code`; the JS layer picks the error class
//! (TypeError, RangeError, ConfigError, ...) from the code's kind.

use napi::Status;

/// Codes raised by the native side. The `_TYPE` / `_RANGE` variants tell the JS layer to
/// throw a `TypeError` / `RangeError`; the public `code` is the same without the suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
  /// A configuration value is invalid (unknown type, malformed JSON, ...).
  Config,
  /// A configuration value has the wrong JS type.
  ConfigType,
  /// A configuration number is out of range.
  ConfigRange,
  /// The manager was destroyed.
  Destroyed,
  /// An N-API level failure (argument conversion and the like).
  Napi(Status),
}

impl Code {
  pub fn as_str(&self) -> &'static str {
    match self {
      Code::Config => "E_CONFIG",
      Code::ConfigType => "E_CONFIG_TYPE",
      Code::ConfigRange => "E_CONFIG_RANGE",
      Code::Destroyed => "E_DESTROYED",
      Code::Napi(_) => "E_INTERNAL",
    }
  }
}

impl AsRef<str> for Code {
  fn as_ref(&self) -> &str {
    self.as_str()
  }
}

impl From<Status> for Code {
  fn from(status: Status) -> Self {
    Code::Napi(status)
  }
}

/// A native error: a code plus a message that names the offending field or resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OxError {
  pub code: Code,
  pub message: String,
}

impl OxError {
  pub fn new(code: Code, message: impl Into<String>) -> Self {
    Self {
      code,
      message: message.into(),
    }
  }
}

impl std::fmt::Display for OxError {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    write!(f, "{}: {}", self.code.as_str(), self.message)
  }
}

impl std::error::Error for OxError {}

impl From<OxError> for napi::Error<Code> {
  fn from(e: OxError) -> Self {
    napi::Error::new(e.code, e.message)
  }
}
