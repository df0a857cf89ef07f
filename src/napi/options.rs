//! Reads the options object a user passed to `create()` into a `config::Value`, without
//! JSON: NaN, Infinity, functions, bigints and Buffers stay what they are, and only
//! enumerable string-keyed properties are read (as `for...in` sees them).

use napi::sys;
use std::ptr;

use crate::config::{self, Value};

/// Deeper than any option; a cycle (a logger passed by mistake) stops here.
const MAX_DEPTH: usize = 8;

pub struct ReadError(pub String);

type Raw = sys::napi_value;

fn check(status: sys::napi_status, what: &str) -> Result<(), ReadError> {
  if status == sys::Status::napi_ok {
    Ok(())
  } else {
    Err(ReadError(format!("cannot read {what}")))
  }
}

/// Reads `value`; `path` names it in messages.
pub fn read(env: sys::napi_env, value: Raw, path: &str, depth: usize) -> Result<Value, ReadError> {
  let mut t = 0;
  check(unsafe { sys::napi_typeof(env, value, &mut t) }, path)?;
  Ok(match t {
    sys::ValueType::napi_undefined | sys::ValueType::napi_null => Value::Null,
    sys::ValueType::napi_boolean => {
      let mut b = false;
      check(
        unsafe { sys::napi_get_value_bool(env, value, &mut b) },
        path,
      )?;
      Value::Bool(b)
    }
    sys::ValueType::napi_number => {
      let mut n = 0.0;
      check(
        unsafe { sys::napi_get_value_double(env, value, &mut n) },
        path,
      )?;
      Value::Number(n)
    }
    sys::ValueType::napi_string => Value::String(read_string(env, value, path)?),
    sys::ValueType::napi_object => {
      if depth >= MAX_DEPTH {
        return Ok(Value::Other("object nested too deeply (circular?)"));
      }
      read_object(env, value, path, depth)?
    }
    sys::ValueType::napi_function => Value::Other("function"),
    sys::ValueType::napi_bigint => Value::Other("bigint"),
    sys::ValueType::napi_symbol => Value::Other("symbol"),
    _ => Value::Other("object"),
  })
}

fn read_string(env: sys::napi_env, value: Raw, path: &str) -> Result<String, ReadError> {
  let mut len = 0;
  check(
    unsafe { sys::napi_get_value_string_utf8(env, value, ptr::null_mut(), 0, &mut len) },
    path,
  )?;
  let mut buf = vec![0u8; len + 1];
  check(
    unsafe {
      sys::napi_get_value_string_utf8(env, value, buf.as_mut_ptr().cast(), buf.len(), &mut len)
    },
    path,
  )?;
  buf.truncate(len);
  Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn read_object(
  env: sys::napi_env,
  value: Raw,
  path: &str,
  depth: usize,
) -> Result<Value, ReadError> {
  let mut is = false;
  check(unsafe { sys::napi_is_buffer(env, value, &mut is) }, path)?;
  if !is {
    check(
      unsafe { sys::napi_is_typedarray(env, value, &mut is) },
      path,
    )?;
  }
  if is {
    return read_bytes(env, value, path);
  }
  check(unsafe { sys::napi_is_array(env, value, &mut is) }, path)?;
  if is {
    let mut n = 0u32;
    check(
      unsafe { sys::napi_get_array_length(env, value, &mut n) },
      path,
    )?;
    let mut items = Vec::with_capacity(n.min(1024) as usize);
    for i in 0..n {
      let mut item = ptr::null_mut();
      let p = format!("{path}[{i}]");
      check(
        unsafe { sys::napi_get_element(env, value, i, &mut item) },
        &p,
      )?;
      items.push(read(env, item, &p, depth + 1)?);
    }
    return Ok(Value::Array(items));
  }
  let mut names = ptr::null_mut();
  check(
    unsafe { sys::napi_get_property_names(env, value, &mut names) },
    path,
  )?;
  let mut n = 0u32;
  check(
    unsafe { sys::napi_get_array_length(env, names, &mut n) },
    path,
  )?;
  let mut fields = Vec::with_capacity(n as usize);
  for i in 0..n {
    let mut raw_name = ptr::null_mut();
    check(
      unsafe { sys::napi_get_element(env, names, i, &mut raw_name) },
      path,
    )?;
    let name = read_string(env, raw_name, path)?;
    let p = if path.is_empty() {
      name.clone()
    } else {
      format!("{path}.{name}")
    };
    read_field(env, value, raw_name, name, &p, depth, &mut fields)?;
  }
  for name in config::option_names() {
    if fields.iter().any(|(k, _)| k == name) {
      continue;
    }
    let mut raw_name = ptr::null_mut();
    check(
      unsafe {
        sys::napi_create_string_utf8(
          env,
          name.as_ptr().cast(),
          name.len() as isize,
          &mut raw_name,
        )
      },
      path,
    )?;
    let mut has = false;
    check(
      unsafe { sys::napi_has_property(env, value, raw_name, &mut has) },
      path,
    )?;
    if has {
      let p = if path.is_empty() {
        name.to_string()
      } else {
        format!("{path}.{name}")
      };
      read_field(
        env,
        value,
        raw_name,
        name.to_string(),
        &p,
        depth,
        &mut fields,
      )?;
    }
  }
  Ok(Value::Object(fields))
}

fn read_field(
  env: sys::napi_env,
  object: Raw,
  raw_name: Raw,
  name: String,
  path: &str,
  depth: usize,
  fields: &mut Vec<(String, Value)>,
) -> Result<(), ReadError> {
  let mut field = ptr::null_mut();
  // A throwing getter leaves a pending exception: the JS layer turns it into a TypeError.
  check(
    unsafe { sys::napi_get_property(env, object, raw_name, &mut field) },
    path,
  )?;
  let mut t = 0;
  check(unsafe { sys::napi_typeof(env, field, &mut t) }, path)?;
  // An undefined field is as good as absent. A field no option has is an error anyway:
  // it is not walked (it may be a logger or a client with thousands of properties).
  if t == sys::ValueType::napi_undefined {
    return Ok(());
  }
  let v = if config::option_names().any(|n| n == name) {
    read(env, field, path, depth + 1)?
  } else {
    Value::Other("an unknown field")
  };
  fields.push((name, v));
  Ok(())
}

fn read_bytes(env: sys::napi_env, value: Raw, path: &str) -> Result<Value, ReadError> {
  let mut data = ptr::null_mut();
  let mut len = 0usize;
  let mut is_buffer = false;
  check(
    unsafe { sys::napi_is_buffer(env, value, &mut is_buffer) },
    path,
  )?;
  if is_buffer {
    check(
      unsafe { sys::napi_get_buffer_info(env, value, &mut data, &mut len) },
      path,
    )?;
  } else {
    let (mut kind, mut count, mut buf, mut off) = (0, 0usize, ptr::null_mut(), 0usize);
    check(
      unsafe {
        sys::napi_get_typedarray_info(
          env, value, &mut kind, &mut count, &mut data, &mut buf, &mut off,
        )
      },
      path,
    )?;
    // `data` already points at the view's first element.
    len = count.saturating_mul(element_size(kind));
  }
  let bytes = if data.is_null() || len == 0 {
    Vec::new()
  } else {
    unsafe { std::slice::from_raw_parts(data as *const u8, len) }.to_vec()
  };
  Ok(Value::Bytes(bytes))
}

fn element_size(kind: sys::napi_typedarray_type) -> usize {
  match kind {
    sys::TypedarrayType::int16_array | sys::TypedarrayType::uint16_array => 2,
    sys::TypedarrayType::int32_array
    | sys::TypedarrayType::uint32_array
    | sys::TypedarrayType::float32_array => 4,
    sys::TypedarrayType::float64_array
    | sys::TypedarrayType::bigint64_array
    | sys::TypedarrayType::biguint64_array => 8,
    _ => 1,
  }
}
