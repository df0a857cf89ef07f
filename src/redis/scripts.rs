//! The Redis side of the lock, wire-compatible with node-redlock v3/v4: one string key per
//! resource, named exactly as the resource, holding the holder's token, with a PX expiry.
//! Acquire is `SET key token NX PX ttl` (what v4's acquire script does for one key), in a
//! script that also draws the lock's fence from a counter key next to it (`fence_key`).
//! Release and extend act only while the stored value is our token. Every script is sent
//! by EVALSHA, with a fallback to loading it on NOSCRIPT (redis-rs `Script`).

use redis::Script;
use std::sync::LazyLock;

/// The fence of an acquisition, in Lua: the counter KEYS[2] + 1; a counter that was not
/// there (new, expired, or lost in a restart without persistence) starts from the server's
/// clock in µs (`TIME`), so it still hands out larger numbers than before (while the clock
/// does not step back). That floor is needed only then: a counter never runs ahead of the
/// clock that floored it, since each increment takes the server more than a µs. Reading the
/// clock on every draw cost two more calls per acquisition (about 1.5 µs of the server's
/// 5.4). The counter then outlives the lock by an hour (ARGV[3] ms).
const DRAW_FENCE: &str = r#"
  local f = redis.call("incr", KEYS[2])
  if f == 1 then
    local t = redis.call("time")
    f = tonumber(t[1]) * 1000000 + tonumber(t[2])
    redis.call("set", KEYS[2], string.format("%d", f), "PX", ARGV[3])
  else
    redis.call("pexpire", KEYS[2], ARGV[3])
  end
  return f"#;

/// How long a fence counter outlives the lock that last drew from it, in ms.
pub const FENCE_KEEP_MS: u64 = 3_600_000;

/// How long a failed acquisition's "someone waits" mark (KEYS[3], `waiting_key`) lasts.
pub const WAITING_MS: u64 = 2000;

/// `SET KEYS[1] ARGV[1] NX PX ARGV[2]`; if set, returns the new fence, else marks that
/// someone waits (KEYS[3] for ARGV[4] ms: local handoffs elsewhere then give way) and
/// returns 0.
pub static ACQUIRE: LazyLock<Script> = LazyLock::new(|| Script::new(&ACQUIRE_SOURCE));
pub static ACQUIRE_SOURCE: LazyLock<String> = LazyLock::new(|| {
  format!(
    r#"if not redis.call("set", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then
  redis.call("set", KEYS[3], "1", "PX", ARGV[4])
  return 0
end{DRAW_FENCE}"#
  )
});

/// ACQUIRE for n keys, node-redlock v4's multi-resource script (if any key exists, none is
/// set and 0 is returned; else every key is set to the token with PX) with our side keys:
/// KEYS = n lock keys, their n fence counters, their n waiting marks. The fence is the
/// largest of the keys' drawn fences (and of `TIME`), and every counter is raised to it, so
/// it is above every earlier fence of each key, and every later one of each key is above it.
pub static ACQUIRE_ALL: LazyLock<Script> = LazyLock::new(|| Script::new(ACQUIRE_ALL_SOURCE));
pub const ACQUIRE_ALL_SOURCE: &str = r#"local n = #KEYS / 3
for i = 1, n do
  if redis.call("exists", KEYS[i]) == 1 then
    for j = 1, n do redis.call("set", KEYS[2 * n + j], "1", "PX", ARGV[4]) end
    return 0
  end
end
local t = redis.call("time")
local f = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, n do
  redis.call("set", KEYS[i], ARGV[1], "PX", ARGV[2])
  local c = redis.call("incr", KEYS[n + i])
  if c > f then f = c end
end
for i = 1, n do redis.call("set", KEYS[n + i], string.format("%d", f), "PX", ARGV[3]) end
return f"#;

/// RELEASE of every key (v4's multi-key release); publishes each freed key when ARGV[2] is
/// "1" (an unlock; not the take-back of a failed attempt). Returns how many were deleted.
pub static RELEASE_ALL: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE_ALL_SOURCE));
pub const RELEASE_ALL_SOURCE: &str = r#"local n = 0
for i = 1, #KEYS do
  if redis.call("get", KEYS[i]) == ARGV[1] then
    redis.call("del", KEYS[i])
    n = n + 1
    if ARGV[2] == "1" then redis.call("publish", "oxlock:freed:" .. KEYS[i], "") end
  end
end
return n"#;

/// EXTEND of every key, only while all of them hold our token (v4's multi-key extend).
/// Returns 1 or 0.
pub static EXTEND_ALL: LazyLock<Script> = LazyLock::new(|| {
  Script::new(
    r#"for i = 1, #KEYS do
  if redis.call("get", KEYS[i]) ~= ARGV[1] then return 0 end
end
for i = 1, #KEYS do redis.call("pexpire", KEYS[i], ARGV[2]) end
return 1"#,
  )
});

/// Raises the fence counter KEYS[1] to ARGV[1] if it is lower (Redlock: the quorum's
/// largest fence, told to every node so that the next quorum, which shares a node with
/// this one only, still draws above it).
pub static RAISE_FENCE: LazyLock<Script> = LazyLock::new(|| {
  Script::new(
    r#"local f = tonumber(redis.call("get", KEYS[1]) or "0")
if f < tonumber(ARGV[1]) then redis.call("set", KEYS[1], ARGV[1], "PX", ARGV[2]) end
return 1"#,
  )
});

/// The counter key of `key`'s fences: in `key`'s hash slot (Redis Cluster runs a script
/// on one slot only). A key with a hash tag keeps it (`<key>:fence`); any other key is
/// wrapped as the tag (`{<key>}:fence`), unless it holds a `}` (then `<key>:fence`, which
/// only a single node or Redlock can serve).
pub fn fence_key(key: &[u8]) -> Vec<u8> {
  side_key(key, FENCE_SUFFIX)
}

/// The "someone waits" mark of `key` (`{<key>}:waiting`, in the key's slot as `fence_key`).
pub fn waiting_key(key: &[u8]) -> Vec<u8> {
  side_key(key, WAITING_SUFFIX)
}

fn side_key(key: &[u8], suffix: &[u8]) -> Vec<u8> {
  let mut out = Vec::with_capacity(key.len() + suffix.len() + 2);
  write_side_key(&mut out, key, suffix, side_key_wraps(key));
  out
}

/// Whether `key`'s side keys wrap it as their hash tag (`{<key>}`): not when it has a tag
/// of its own, nor when it holds a `}`.
pub fn side_key_wraps(key: &[u8]) -> bool {
  let has_tag = key.iter().position(|&b| b == b'{').is_some_and(|open| {
    key[open + 1..]
      .iter()
      .position(|&b| b == b'}')
      .is_some_and(|len| len > 0)
  });
  !has_tag && !key.contains(&b'}')
}

/// Appends `key`'s side key with `suffix` (`fence_key`, `waiting_key`) to `out`; `wraps`
/// is `side_key_wraps(key)`, found once by a caller that also needs the length.
pub fn write_side_key(out: &mut Vec<u8>, key: &[u8], suffix: &[u8], wraps: bool) {
  if wraps {
    out.push(b'{');
    out.extend_from_slice(key);
    out.push(b'}');
  } else {
    out.extend_from_slice(key);
  }
  out.extend_from_slice(suffix);
}

/// The suffixes of `fence_key` and `waiting_key`.
pub const FENCE_SUFFIX: &[u8] = b":fence";
pub const WAITING_SUFFIX: &[u8] = b":waiting";

/// Deletes the key if it holds our token. Returns 1 if deleted, 0 otherwise.
pub static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE_SOURCE));
pub const RELEASE_SOURCE: &str = r#"if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) end
return 0"#;

/// RELEASE, and when the key was ours, a PUBLISH on `oxlock:freed:<key>` (the key's
/// `subscriber::freed_channel`, made here from the key's bytes): waiters in other
/// processes try again at once instead of at their next retry.
pub static RELEASE_NOTIFY: LazyLock<Script> = LazyLock::new(|| {
  Script::new(
    r#"if redis.call("get", KEYS[1]) ~= ARGV[1] then return 0 end
redis.call("del", KEYS[1])
redis.call("publish", "oxlock:freed:" .. KEYS[1], "")
return 1"#,
  )
});

/// Resets the key's expiry to ARGV[2] ms if it holds our token. Returns 1 or 0.
pub static EXTEND: LazyLock<Script> = LazyLock::new(|| {
  Script::new(
    r#"if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) end
return 0"#,
  )
});

/// Hands a key from one token to another (a local handoff in one round trip): if KEYS[1]
/// holds ARGV[4], it now holds ARGV[1] with a fresh expiry of ARGV[2] ms, and the new
/// holder's fence is drawn (KEYS[2], ARGV[3] as in ACQUIRE). Returns the fence, or 0. It
/// refuses (0) after ARGV[5] ≥ ARGV[6] handoffs in a row while someone waits (KEYS[3]).
pub static TRANSFER: LazyLock<Script> = LazyLock::new(|| Script::new(&TRANSFER_SOURCE));
pub static TRANSFER_SOURCE: LazyLock<String> = LazyLock::new(|| format!("{PASS_ON}{DRAW_FENCE}"));

/// TRANSFER up to its fence: the fairness check, the compare and the set.
const PASS_ON: &str = r#"if tonumber(ARGV[5]) >= tonumber(ARGV[6]) and redis.call("exists", KEYS[3]) == 1 then return 0 end
if redis.call("get", KEYS[1]) ~= ARGV[4] then return 0 end
redis.call("set", KEYS[1], ARGV[1], "PX", ARGV[2])"#;

/// TRANSFER without a fence (`lockOptions.fencing: false`): the same keys and arguments,
/// KEYS[2] and ARGV[3] unused. Returns 1, or 0.
pub static TRANSFER_PLAIN: LazyLock<Script> = LazyLock::new(|| Script::new(&TRANSFER_PLAIN_SOURCE));
pub static TRANSFER_PLAIN_SOURCE: LazyLock<String> =
  LazyLock::new(|| format!("{PASS_ON}\nreturn 1"));

#[cfg(test)]
mod tests {
  use super::fence_key;

  #[test]
  fn fence_keys_share_the_lock_keys_slot() {
    assert_eq!(fence_key(b"invoice:42"), b"{invoice:42}:fence");
    assert_eq!(fence_key(b"{user:1}:lock"), b"{user:1}:lock:fence");
    assert_eq!(fence_key(b"a{b"), b"{a{b}:fence");
    // `{}` is no tag (the whole key is hashed), and a `}` would end ours early.
    assert_eq!(fence_key(b"a{}b"), b"a{}b:fence");
    assert_eq!(fence_key(b"a}b"), b"a}b:fence");
  }
}
