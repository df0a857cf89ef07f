//! The options a user passed, as a tree read once from the JS object (or from the JSON
//! of a `LOCK_CONFIG` string), and the helpers that read it with the field's path in
//! every message.

use crate::core::{Error, ErrorKind};

/// A JS value, as much of it as configuration needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
  /// `null` (an `undefined` field is left out of its object).
  Null,
  Bool(bool),
  Number(f64),
  String(String),
  /// A Buffer or typed array (PEM certificates).
  Bytes(Vec<u8>),
  Array(Vec<Value>),
  Object(Vec<(String, Value)>),
  /// Anything else, by its `typeof` (function, bigint, symbol).
  Other(&'static str),
}

impl Value {
  pub fn from_json(v: serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
      J::Null => Value::Null,
      J::Bool(b) => Value::Bool(b),
      J::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
      J::String(s) => Value::String(s),
      J::Array(a) => Value::Array(a.into_iter().map(Value::from_json).collect()),
      J::Object(m) => Value::Object(
        m.into_iter()
          .map(|(k, v)| (k, Value::from_json(v)))
          .collect(),
      ),
    }
  }

  /// What the value is, in the words a JS developer uses.
  pub fn js_type(&self) -> String {
    match self {
      Value::Null => "null".into(),
      Value::Bool(_) => "boolean".into(),
      Value::Number(_) => "number".into(),
      Value::String(_) => "string".into(),
      Value::Bytes(_) => "Buffer".into(),
      Value::Array(_) => "array".into(),
      Value::Object(_) => "object".into(),
      Value::Other(t) => (*t).into(),
    }
  }
}

/// An object of the options and where it sits (`lockConfig.lockOptions`, ...).
#[derive(Clone, Copy)]
pub struct Obj<'a> {
  pub fields: &'a [(String, Value)],
  pub path: &'a str,
}

impl<'a> Obj<'a> {
  pub const EMPTY: Obj<'static> = Obj {
    fields: &[],
    path: "",
  };

  /// Reads `v` as an object, or says what it should have been.
  pub fn of(v: &'a Value, path: &'a str, expected: &str) -> Result<Obj<'a>, Error> {
    match v {
      Value::Object(fields) => Ok(Obj { fields, path }),
      other => Err(type_err(path, expected, other)),
    }
  }

  /// The field's value, unless it is absent or null.
  pub fn get(&self, name: &str) -> Option<&'a Value> {
    self
      .fields
      .iter()
      .find(|(k, _)| k == name)
      .map(|(_, v)| v)
      .filter(|v| !matches!(v, Value::Null))
  }

  pub fn field_path(&self, name: &str) -> String {
    if self.path.is_empty() {
      name.to_string()
    } else {
      format!("{}.{name}", self.path)
    }
  }

  /// Rejects every field not in `known` or `also`: a misspelt or unsupported option must
  /// never be ignored (a dropped `connection.cluster` would lock on someone else's server).
  pub fn only(&self, known: &[&str], also: &[&str]) -> Result<(), Error> {
    let ok = |k: &str| known.contains(&k) || also.contains(&k);
    match self.fields.iter().find(|(k, _)| !ok(k)) {
      None => Ok(()),
      Some((k, _)) => Err(Error::new(
        ErrorKind::Config,
        format!(
          "{} is not an option here; expected one of {}",
          self.field_path(k),
          [known, also].concat().join(", ")
        ),
      )),
    }
  }

  pub fn number(&self, name: &str) -> Result<Option<(f64, String)>, Error> {
    let Some(v) = self.get(name) else {
      return Ok(None);
    };
    let path = self.field_path(name);
    match v {
      Value::Number(n) if n.is_finite() => Ok(Some((*n, path))),
      Value::Number(n) => Err(range_err(
        &path,
        &format!("must be a finite number, got {}", js_number(*n)),
      )),
      other => Err(type_err(&path, "a number", other)),
    }
  }

  /// A number within `min..=max`, or `default` when absent.
  pub fn number_in(&self, name: &str, default: f64, min: f64, max: f64) -> Result<f64, Error> {
    match self.number(name)? {
      None => Ok(default),
      Some((n, _)) if (min..=max).contains(&n) => Ok(n),
      Some((n, path)) => Err(range_err(
        &path,
        &format!("must be between {min} and {max}, got {n}"),
      )),
    }
  }

  /// A boolean, or `default` when absent.
  pub fn boolean(&self, name: &str, default: bool) -> Result<bool, Error> {
    match self.get(name) {
      None => Ok(default),
      Some(Value::Bool(b)) => Ok(*b),
      Some(other) => Err(type_err(&self.field_path(name), "a boolean", other)),
    }
  }

  pub fn string(&self, name: &str) -> Result<Option<&'a str>, Error> {
    match self.get(name) {
      None => Ok(None),
      Some(Value::String(s)) => Ok(Some(s)),
      Some(other) => Err(type_err(&self.field_path(name), "a string", other)),
    }
  }
}

/// A number as JS prints it (`Infinity`, not Rust's `inf`).
pub fn js_number(n: f64) -> String {
  if n.is_nan() {
    "NaN".into()
  } else if n.is_infinite() {
    if n > 0.0 { "Infinity" } else { "-Infinity" }.into()
  } else {
    format!("{n}")
  }
}

pub fn type_err(path: &str, expected: &str, got: &Value) -> Error {
  Error::new(
    ErrorKind::ConfigType,
    format!("{path} must be {expected}, got {}", got.js_type()),
  )
}

pub fn range_err(path: &str, what: &str) -> Error {
  Error::new(ErrorKind::ConfigRange, format!("{path} {what}"))
}

pub fn config_err(message: String) -> Error {
  Error::new(ErrorKind::Config, message)
}
