//! Request decoding on arbitrary bytes (padded or cut to one 32-byte slot): must return, never
//! panic; the id must be bytes 0..8 whatever the rest holds (a malformed request is answered
//! with it); a slot that decodes must re-encode to its meaningful bytes (zeros elsewhere) and
//! decode to the same request again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkv::protocol::{decode_request, request_id};
use shmkv_fuzz::{check_request_reencodes, slot_from};

fuzz_target!(|data: &[u8]| {
    let s = slot_from(data);
    let id = request_id(&s);
    assert_eq!(id, u64::from_le_bytes(s[..8].try_into().unwrap()));
    if let Ok(r) = decode_request(&s) {
        assert_eq!(r.id, id);
        check_request_reencodes(&s, &r);
    }
});
