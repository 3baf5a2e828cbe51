//! The largest key and value a server accepts ([`Limits`]), and the longest messages they allow.

use super::HEADER_LEN;
#[cfg(doc)] // Names the item docs link to.
use super::WireError;

/// The largest key and value, announced by the server and passed to the decoders, which refuse
/// a longer field with [`WireError::TooLarge`] before copying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Largest key in bytes (keys are `1..=max_key` bytes).
    pub max_key: u32,
    /// Largest value in bytes (values are `0..=max_value` bytes).
    pub max_value: u32,
}

impl Limits {
    /// No limit but the `u32` length prefix (for tests and tools that read what a peer wrote).
    pub const UNLIMITED: Limits = Limits {
        max_key: u32::MAX,
        max_value: u32::MAX,
    };

    /// The length of the longest request these limits allow: a `cas` with the longest key and
    /// two longest values.
    pub const fn max_request_len(&self) -> u64 {
        HEADER_LEN as u64 + 3 * 4 + self.max_key as u64 + 2 * self.max_value as u64
    }

    /// The length of the longest response these limits allow whose lists (if any) hold one
    /// item: an `Entries` part with the longest key and value, a `Keys` part with the longest
    /// key, a reply with the longest value, or (with tiny limits) a `BadBucket` error. A
    /// server whose records carry this many bytes can send every answer (it splits longer
    /// lists, see the [module](super) docs).
    pub const fn max_response_len(&self) -> u64 {
        let k = self.max_key as u64;
        let v = self.max_value as u64;
        let entries = 4 + 4 + k + 4 + v;
        let keys = 8 + 4 + 4 + k;
        let value = 4 + v;
        // The longest body without a key or value: a BadBucket error (2 + 16), or a Stats part
        // with one stat (4 + 14).
        let fixed = 18;
        let mut m = entries;
        if keys > m {
            m = keys;
        }
        if value > m {
            m = value;
        }
        if fixed > m {
            m = fixed;
        }
        HEADER_LEN as u64 + m
    }

    /// Whether every request and every (part of an) answer fits in a record of `max_payload`
    /// bytes ([`crate::record::max_payload`]).
    pub const fn fit(&self, max_payload: usize) -> bool {
        let p = max_payload as u64;
        self.max_request_len() <= p && self.max_response_len() <= p
    }
}
