//! Reading lock keys from JS strings into their WTF-8 bytes (see `core::key`).
//!
//! Keys are read as UTF-16, whose length V8 reports exactly (a UTF-8 read into a short
//! buffer stops before a character that does not fit).

use napi::bindgen_prelude::*;

use crate::core::key::wtf8_from_utf16;

/// Code units read with one N-API call; longer keys take a second call.
const STACK_UNITS: usize = 128;

/// Reads the JS string `value` as a WTF-8 key into `out` (cleared first).
pub fn read_key(env: &Env, value: &Unknown, out: &mut Vec<u8>) -> Result<()> {
  out.clear();
  let mut stack = [0u16; STACK_UNITS];
  let mut len = 0usize;
  let status = unsafe {
    napi::sys::napi_get_value_string_utf16(
      env.raw(),
      value.raw(),
      stack.as_mut_ptr(),
      STACK_UNITS,
      &mut len,
    )
  };
  if status != napi::sys::Status::napi_ok {
    return Err(Error::new(Status::StringExpected, "key must be a string"));
  }
  // V8 writes at most STACK_UNITS - 1 units (it keeps room for a terminator).
  if len + 1 < STACK_UNITS {
    wtf8_from_utf16(&stack[..len], out);
    return Ok(());
  }
  let mut total = 0usize;
  unsafe {
    napi::sys::napi_get_value_string_utf16(
      env.raw(),
      value.raw(),
      std::ptr::null_mut(),
      0,
      &mut total,
    )
  };
  let mut units = vec![0u16; total + 1];
  unsafe {
    napi::sys::napi_get_value_string_utf16(
      env.raw(),
      value.raw(),
      units.as_mut_ptr(),
      units.len(),
      &mut len,
    )
  };
  wtf8_from_utf16(&units[..len], out);
  Ok(())
}

thread_local! {
  /// Reused for every key read: no allocation for the key unless the table keeps it.
  static KEY_BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(256));
}

/// A key read into the thread's reusable buffer; gives the buffer back when dropped.
pub struct KeyBuf(Vec<u8>);

impl std::ops::Deref for KeyBuf {
  type Target = [u8];
  fn deref(&self) -> &[u8] {
    &self.0
  }
}

impl Drop for KeyBuf {
  fn drop(&mut self) {
    KEY_BUF.set(std::mem::take(&mut self.0));
  }
}

/// The WTF-8 bytes of a JS string key.
pub fn read(
  env: &Env,
  key: &Unknown,
) -> std::result::Result<KeyBuf, napi::Error<crate::core::ErrorKind>> {
  let mut buf = KEY_BUF.take();
  read_key(env, key, &mut buf)
    .map_err(|e| napi::Error::new(crate::core::ErrorKind::Internal, e.reason.clone()))?;
  Ok(KeyBuf(buf))
}
