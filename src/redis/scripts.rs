//! The Redis side of the lock, wire-compatible with node-redlock v3/v4: one string key per
//! resource, named exactly as the resource, holding the holder's token, with a PX expiry.
//! Acquire is `SET key token NX PX ttl` (what v4's acquire script does for one key).
//! Release and extend act only while the stored value is our token; they are Lua scripts
//! sent by EVALSHA, with a fallback to loading them on NOSCRIPT (redis-rs `Script`).

use redis::Script;
use std::sync::LazyLock;

/// Deletes the key if it holds our token. Returns 1 if deleted, 0 otherwise.
pub static RELEASE: LazyLock<Script> = LazyLock::new(|| {
  Script::new(
    r#"if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) end
return 0"#,
  )
});

/// Resets the key's expiry to ARGV[2] ms if it holds our token. Returns 1 or 0.
pub static EXTEND: LazyLock<Script> = LazyLock::new(|| {
  Script::new(
    r#"if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) end
return 0"#,
  )
});

/// Hands a key from one token to another (a local handoff in one round trip): if it holds
/// ARGV[1], it now holds ARGV[2] with a fresh expiry of ARGV[3] ms. Returns 1 or 0.
pub static TRANSFER: LazyLock<Script> = LazyLock::new(|| {
  Script::new(
    r#"if redis.call("get", KEYS[1]) == ARGV[1] then
  redis.call("set", KEYS[1], ARGV[2], "PX", ARGV[3])
  return 1
end
return 0"#,
  )
});
