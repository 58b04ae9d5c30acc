//! What a verified token's claims hold on the heap, so that the token cache's
//! byte budget counts entries at what they really take.
//!
//! Each allocation is counted as glibc's allocator holds it (a header of
//! eight bytes, rounded up to sixteen, at least 32); other allocators round
//! differently, by a few percent of an entry.

use serde_json::{Map, Value};

/// The bytes the allocator holds for a request of `bytes`; none for none.
pub(crate) const fn allocation(bytes: usize) -> usize {
    if bytes == 0 {
        return 0;
    }
    let chunk = (bytes + 8).next_multiple_of(16);
    if chunk < 32 { 32 } else { chunk }
}

/// A boxed value of type `T` whose own allocations hold `inner` bytes.
pub(crate) const fn boxed<T>(inner: usize) -> usize {
    allocation(size_of::<T>()) + inner
}

/// A value of type `T` shared by `Arc` (its two reference counts beside
/// it), whose own allocations hold `inner` bytes.
pub(crate) const fn shared<T>(inner: usize) -> usize {
    allocation(2 * size_of::<usize>() + size_of::<T>()) + inner
}

/// The allocation of a text.
pub(crate) fn text(text: &str) -> usize {
    allocation(text.len())
}

/// The allocations of a boxed list of texts.
pub(crate) fn texts(texts: &[Box<str>]) -> usize {
    allocation(size_of_val(texts)) + texts.iter().map(|t| text(t)).sum::<usize>()
}

/// The allocations of a JSON object of other claims, as serde_json keeps
/// one: B-tree leaves of eleven entries, each key's text, each value's.
pub(crate) fn json_object(object: &Map<String, Value>) -> usize {
    const LEAF: usize = 11 * (size_of::<String>() + size_of::<Value>()) + 16;
    allocation(LEAF) * object.len().div_ceil(11)
        + object
            .iter()
            .map(|(key, value)| text(key) + json_value(value))
            .sum::<usize>()
}

fn json_value(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        Value::String(string) => text(string),
        Value::Array(values) => {
            allocation(size_of_val(values.as_slice()))
                + values.iter().map(json_value).sum::<usize>()
        }
        Value::Object(object) => json_object(object),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_round_as_glibc_does() {
        assert_eq!(allocation(0), 0);
        assert_eq!(allocation(1), 32);
        assert_eq!(allocation(24), 32);
        assert_eq!(allocation(25), 48);
        assert_eq!(allocation(659), 672);
    }
}
